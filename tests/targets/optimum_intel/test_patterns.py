"""Patch patterns on the miniature optimum-intel workspace: each precondition, each edit, and the search."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.source.python_edit import EditError
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import (MLA_PKV_GENERATOR, NORMALIZED_CONFIG, ONNX_REMOVAL, PKV_GENERATOR,
                                                  PatternContext, applicable, combined_edit)
from tools.targets.optimum_intel.patterns.edit import insert_import, resolved_attrs
from tools.targets.optimum_intel.patterns.moe import (FLAT_OUTPUT, MOE_BATCHED_MM, blocks_combining_flat_output,
                                                      experts_classes)
from tools.targets.optimum_intel.search import search
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
PATCHER = "optimum/exporters/openvino/model_patcher.py"
# head_dim set: llama's default dict carries the head_dim of its full-size default (128)
SMALL = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, head_dim=16, num_hidden_layers=2,
             vocab_size=1024)


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def analysis(model_type: str, raw: dict | None = None, **overrides) -> dict:
    raw = raw if raw is not None else {**AutoConfig.for_model(model_type).to_dict(), **overrides}
    out = analyze(raw).model_dump(mode="json")
    out["raw_text_config"] = raw
    return out


def ctx(ws: Path, base: str, model_type: str, raw: dict | None = None, **overrides) -> PatternContext:
    return PatternContext(analysis(model_type, raw, **overrides), ws, base)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def write(ws: Path, c: PatternContext, names: list[str]):
    edit = combined_edit(c, names)
    spec = PatchSpec(model_type=c.model_type, base_class=c.base_class, min_transformers_version="5.0.0",
                     display_name=c.model_type, tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers)
    return edit, write_patch(ws, spec)


def assert_additive_and_parses(before: dict[str, str], after: dict[str, str]) -> None:
    for rel, text in after.items():
        if rel.endswith(".py"):
            ast.parse(text)
    for rel in before:
        assert not set(before[rel].splitlines()) - set(after[rel].splitlines()), rel


# -- the import edit -----------------------------------------------------------------------------------

LIST = "import os\nfrom pkg.mod import (\n    Alpha,\n    Gamma,\n)\nfrom other import x\n\nY = 1\n"


def test_import_joins_a_one_per_line_list_in_order():
    assert insert_import(LIST, "pkg.mod", "beta").text == LIST.replace("    Alpha,\n", "    Alpha,\n    beta,\n")
    last = insert_import(LIST, "pkg.mod", "Zeta").text
    assert "    Gamma,\n    Zeta,\n)" in last
    assert not insert_import(LIST, "pkg.mod", "Gamma").changed


def test_import_adds_a_line_when_no_list_fits():
    one_line = "from pkg.mod import Alpha\n\nY = 1\n"
    two = "from pkg.mod import Alpha\nfrom pkg.mod import Beta\n\nY = 1\n"
    assert insert_import(one_line, "pkg.mod", "Beta").text == two
    assert "from new.mod import Z\n\nY = 1" in insert_import(LIST, "new.mod", "Z").text
    crlf = LIST.replace("\n", "\r\n")
    assert insert_import(crlf, "pkg.mod", "Beta").text == crlf.replace("    Alpha,\r\n", "    Alpha,\r\n    Beta,\r\n")
    with pytest.raises(EditError, match="elsewhere"):
        insert_import(LIST, "pkg.mod", "x")


def test_attributes_resolve_through_the_base_config_module(ws):
    found = resolved_attrs(ws, "GPTNeoOpenVINOConfig", ("DUMMY_PKV_GENERATOR_CLASS", "NORMALIZED_CONFIG_CLASS"))
    assert ast.unparse(found["DUMMY_PKV_GENERATOR_CLASS"]) == "DummyPastKeyValuesGenerator"  # from config.py
    assert ast.unparse(found["NORMALIZED_CONFIG_CLASS"]) == "NormalizedTextConfig"
    assert resolved_attrs(ws, "NopeOpenVINOConfig", ("X",)) == {}


# -- moe_batched_mm -------------------------------------------------------------------------------------

def test_moe_precondition_needs_fused_gated_experts_and_the_helper(ws):
    assert [e.name for e in experts_classes("olmoe")] == ["OlmoeExperts"]
    assert "OlmoeExperts" in MOE_BATCHED_MM.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe"))
    assert MOE_BATCHED_MM.precondition(ctx(ws, "LlamaOpenVINOConfig", "llama")) is None  # dense: no experts
    assert not experts_classes("nemotron_h")[0].has_gate  # up-projection-only experts: another shape
    assert MOE_BATCHED_MM.precondition(ctx(ws, "LlamaOpenVINOConfig", "nemotron_h")) is None
    patcher = ws / PATCHER
    patcher.write_text(patcher.read_text().replace("def register_ov_batched_mm(", "def older_helper("))
    assert MOE_BATCHED_MM.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe")) is None  # older optimum-intel


def test_moe_edit_adds_a_patcher_of_the_bases_patcher_that_calls_the_helper(ws):
    before = snapshot(ws)
    edit, result = write(ws, ctx(ws, "MixtralOpenVINOConfig", "olmoe"), ["moe_batched_mm"])
    after = snapshot(ws)
    assert_additive_and_parses(before, after)
    assert edit.min_transformers == "5.0.0" and set(result.changed) >= {CONFIGS, PATCHER}
    tree = ast.parse(after[PATCHER])
    names = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert names[names.index("MixtralModelPatcher") + 1] == "OlmoeModelPatcher"
    cls = next(n for n in tree.body if getattr(n, "name", "") == "OlmoeModelPatcher")
    assert [ast.unparse(b) for b in cls.bases] == ["MixtralModelPatcher"]
    calls = [ast.unparse(n) for n in ast.walk(cls) if isinstance(n, ast.Call)]
    assert sorted(calls) == ["register_ov_batched_mm(self)", "super()", "super().__enter__()"]  # reused, not copied
    configs = after[CONFIGS]
    assert "    MixtralModelPatcher,\n    OlmoeModelPatcher,\n    OVDecoderModelPatcher,\n" in configs
    assert "class OlmoeOpenVINOConfig(MixtralOpenVINOConfig):" in configs
    assert "    _MODEL_PATCHER = OlmoeModelPatcher\n" in configs
    again = snapshot(ws)
    write(ws, ctx(ws, "MixtralOpenVINOConfig", "olmoe"), ["moe_batched_mm"])
    assert snapshot(ws) == again  # idempotent


def test_moe_patcher_falls_back_to_the_decoder_patcher(ws):
    # the fixture's Llama config names no patcher defined in model_patcher.py
    edit = combined_edit(ctx(ws, "LlamaOpenVINOConfig", "olmoe"), ["moe_batched_mm"])
    assert edit.patchers[0].after == "OVDecoderModelPatcher"
    assert edit.patchers[0].source.startswith("class OlmoeModelPatcher(OVDecoderModelPatcher):")


def test_a_patcher_whose_anchor_is_missing_fails_before_the_registration(ws):
    edit = combined_edit(ctx(ws, "MixtralOpenVINOConfig", "olmoe"), ["moe_batched_mm"])
    edit.patchers[0].after = "GoneModelPatcher"
    spec = PatchSpec(model_type="olmoe", base_class="MixtralOpenVINOConfig", min_transformers_version="5.0.0",
                     display_name="OLMoE", tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers)
    before = snapshot(ws)
    with pytest.raises(LookupError):
        write_patch(ws, spec)
    assert snapshot(ws) == before


def test_flat_output_only_where_a_block_adds_to_the_flat_experts_output(ws):
    # Ernie 4.5 MoE adds the shared experts' (tokens, hidden) output before reshaping; olmoe reshapes first
    assert blocks_combining_flat_output("ernie4_5_moe") == ("Ernie4_5_MoeSparseMoeBlock",)
    assert blocks_combining_flat_output("olmoe") == () and blocks_combining_flat_output("glm4_moe") == ()
    assert "Ernie4_5_MoeSparseMoeBlock" in FLAT_OUTPUT.precondition(ctx(ws, "LlamaOpenVINOConfig", "ernie4_5_moe"))
    assert FLAT_OUTPUT.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe")) is None


def test_flat_output_edit_wraps_the_upstream_forward(ws):
    before = snapshot(ws)
    c = ctx(ws, "LlamaOpenVINOConfig", "ernie4_5_moe")
    assert [n for n, _ in applicable(c)][:2] == ["moe_batched_mm", "moe_experts_2d_output"]
    write(ws, c, ["moe_batched_mm", "moe_experts_2d_output"])
    after = snapshot(ws)
    assert_additive_and_parses(before, after)
    tree = ast.parse(after[PATCHER])
    names = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert names[names.index("register_ov_batched_mm") + 1] == "ov_batched_mm_experts_forward_2d"
    wrapper = next(n for n in tree.body if getattr(n, "name", "") == "ov_batched_mm_experts_forward_2d")
    assert "batched_mm_experts_forward_patched(self, hidden_states, top_k_index, top_k_weights)" in \
        ast.unparse(wrapper)
    patcher = next(n for n in tree.body if getattr(n, "name", "") == "Ernie45MoeModelPatcher")
    assert "ALL_EXPERTS_FUNCTIONS.register('ov_batched_mm', ov_batched_mm_experts_forward_2d)" in \
        ast.unparse(patcher)


# -- pkv_generator ----------------------------------------------------------------------------------------

def test_pkv_generator_follows_head_dim_and_gqa(ws):
    odd = ctx(ws, "GPTNeoOpenVINOConfig", "llama", **{**SMALL, "head_dim": 32})  # plain generator ignores head_dim
    assert "GemmaDummyPastKeyValuesGenerator" in PKV_GENERATOR.precondition(odd)
    missing = ctx(ws, "Qwen3OpenVINOConfig", "olmoe")  # Gemma's generator needs a head_dim olmoe lacks
    assert "MistralDummyPastKeyValuesGenerator" in PKV_GENERATOR.precondition(missing)
    gqa = ctx(ws, "GPTNeoOpenVINOConfig", "llama", **{**SMALL, "num_key_value_heads": 2})
    assert "MistralDummyPastKeyValuesGenerator" in PKV_GENERATOR.precondition(gqa)
    assert PKV_GENERATOR.precondition(ctx(ws, "MixtralOpenVINOConfig", "llama", **{**SMALL, "head_dim": 32})) is None
    assert PKV_GENERATOR.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "llama", **SMALL)) is None  # MHA, h/n
    assert PKV_GENERATOR.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "deepseek_v3")) is None  # MLA caches


def test_pkv_generator_edit_swaps_the_generator_in_place(ws):
    before = snapshot(ws)
    edit, _ = write(ws, ctx(ws, "GPTNeoOpenVINOConfig", "llama", **{**SMALL, "head_dim": 32}), ["pkv_generator"])
    assert edit.class_attrs == {
        "DUMMY_INPUT_GENERATOR_CLASSES": "(DummyTextInputGenerator, GemmaDummyPastKeyValuesGenerator)",
        "DUMMY_PKV_GENERATOR_CLASS": "GemmaDummyPastKeyValuesGenerator"}
    after = snapshot(ws)
    assert_additive_and_parses(before, after)
    assert "    DUMMY_PKV_GENERATOR_CLASS = GemmaDummyPastKeyValuesGenerator\n" in after[CONFIGS]
    assert after[CONFIGS].count("import GemmaDummyPastKeyValuesGenerator") == 1  # already imported: kept


# -- normalized_config_mapping ---------------------------------------------------------------------------

TOY = {"model_type": "toy_gpt", "n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 100}


def test_normalized_mapping_only_for_names_the_config_lacks(ws):
    why = NORMALIZED_CONFIG.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "toy_gpt", TOY))
    assert "num_layers from `n_layer`" in why and "hidden_size from `n_embd`" in why
    # transformers' own attribute map already answers for gpt2's n_layer/n_head/n_embd
    assert NORMALIZED_CONFIG.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "gpt2")) is None
    assert NORMALIZED_CONFIG.precondition(ctx(ws, "LlamaOpenVINOConfig", "llama")) is None
    nested = analysis("toy_gpt", TOY)
    nested["text_config_key"] = "text_config"
    assert NORMALIZED_CONFIG.precondition(PatternContext(nested, ws, "GPTNeoOpenVINOConfig")) is None


def test_normalized_mapping_edit(ws):
    edit = combined_edit(ctx(ws, "GPTNeoOpenVINOConfig", "toy_gpt", TOY), ["normalized_config_mapping"])
    assert edit.class_attrs["NORMALIZED_CONFIG_CLASS"] == \
        'NormalizedTextConfig.with_args(num_layers="n_layer", num_attention_heads="n_head", hidden_size="n_embd")'
    # a generator that reads num_key_value_heads gets the heads themselves when the config has no GQA field
    mha = combined_edit(ctx(ws, "MixtralOpenVINOConfig", "toy_gpt", TOY), ["normalized_config_mapping"])
    assert mha.class_attrs["NORMALIZED_CONFIG_CLASS"].endswith('num_key_value_heads="n_head", allow_new=True)')
    before = snapshot(ws)
    write(ws, ctx(ws, "GPTNeoOpenVINOConfig", "toy_gpt", TOY), ["normalized_config_mapping"])
    assert_additive_and_parses(before, snapshot(ws))
    assert "    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig.with_args(" in (ws / CONFIGS).read_text()


# -- onnx_fallback_removal and the registry ----------------------------------------------------------------

def test_onnx_removal_is_named_when_the_type_is_listed(ws):
    assert ONNX_REMOVAL.precondition(ctx(ws, "LlamaOpenVINOConfig", "seed_oss"))
    assert ONNX_REMOVAL.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe")) is None
    with pytest.raises(ValueError, match="unknown pattern"):
        combined_edit(ctx(ws, "LlamaOpenVINOConfig", "olmoe"), ["nope"])


def test_applicable_lists_every_pattern_that_holds(ws):
    found = dict(applicable(ctx(ws, "Qwen3OpenVINOConfig", "olmoe")))
    assert list(found) == ["moe_batched_mm", "pkv_generator"]
    edit = combined_edit(ctx(ws, "Qwen3OpenVINOConfig", "olmoe"), list(found))
    assert edit.class_attrs["_MODEL_PATCHER"] == "OlmoeModelPatcher"
    assert edit.class_attrs["DUMMY_PKV_GENERATOR_CLASS"] == "MistralDummyPastKeyValuesGenerator"
    assert edit.note.count("pattern ") == 2


# -- search over (base x patterns) ------------------------------------------------------------------------

def test_moe_types_try_every_base_with_the_moe_pattern_first(ws):
    from tools.targets.optimum_intel.target import read_registry

    found = search(analysis("olmoe"), ws, read_registry(ws), limit=20)
    ids = [c.id for c in found]
    assert ids[:3] == ["llama+moe_batched_mm", "mixtral+moe_batched_mm", "qwen3+moe_batched_mm+pkv_generator"]
    assert ids[3:] == ["alias:llama", "alias:mixtral", "qwen3+pkv_generator"]
    assert "OlmoeExperts" in found[0].why and found[0].params == {"base_class": "LlamaOpenVINOConfig"}
    assert len(search(analysis("olmoe"), ws, read_registry(ws), limit=2)) == 2


def test_capped_bases_go_last_and_dense_types_get_no_moe_pattern(ws):
    from tools.targets.optimum_intel.target import read_registry

    a = analysis("seed_oss")
    a["lineage"] = ["exaone", "llama"]
    found = search(a, ws, read_registry(ws), limit=20)
    assert found[-1].base == "exaone" and "caps transformers at 4.57.6" in found[-1].why
    assert all("moe_batched_mm" not in c.patterns for c in found)
    assert found[0].id == "llama+onnx_fallback_removal" and "ONNX_SUPPORTED_ARCHITECTURES" in found[0].why


def test_target_apply_writes_the_candidates_patterns_and_says_why(ws, tmp_path):
    from tools.targets.base import Candidate, JobContext
    from tools.targets.optimum_intel.target import OptimumIntelTarget, read_registry

    target = OptimumIntelTarget(tmp_path / "cache")
    target._versions["olmoe"] = ("4.45.0", "first release with the model (test)")  # no package index here
    tiny = tmp_path / "tiny"
    AutoConfig.for_model("olmoe", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         intermediate_size=32, num_experts=4, vocab_size=1024).save_pretrained(tiny)
    a = analysis("olmoe")
    cand = target.candidates(a, ws, limit=4)[0]
    assert cand.id == "llama+moe_batched_mm" and cand.patterns == ["moe_batched_mm"]
    job = JobContext(model_type="olmoe", tiny_dir=tiny, work_dir=tmp_path / "job")
    applied = target.apply(cand, a, ws, job)
    files, notes = applied.files, applied.notes
    assert {CONFIGS, PATCHER} <= set(files)
    assert notes[0].startswith("pattern moe_batched_mm: OlmoeModelPatcher(OVDecoderModelPatcher)")
    assert any("raised from 4.45.0 to 5.0.0" in n for n in notes)
    written = (ws / CONFIGS).read_text()
    assert '    MIN_TRANSFORMERS_VERSION = "5.0.0"\n    _MODEL_PATCHER = OlmoeModelPatcher\n' in written
    assert read_registry(ws)["olmoe"] == "OlmoeOpenVINOConfig"
    again = snapshot(ws)
    target._write(cand, a, ws, job, facts={"sdpa_ops": 2})  # verify() re-applies with measured facts
    assert snapshot(ws)[PATCHER] == again[PATCHER]


def test_a_head_dim_under_another_name_is_mapped_not_dropped(ws):
    raw = {**TOY, "num_key_value_heads": 2, "head_size": 32}  # head_size != n_embd / n_head
    c = ctx(ws, "GPTNeoOpenVINOConfig", "toy_gpt", raw)
    assert [n for n, _ in applicable(c)] == ["pkv_generator", "normalized_config_mapping"]
    edit = combined_edit(c, ["pkv_generator", "normalized_config_mapping"])
    assert edit.class_attrs["DUMMY_PKV_GENERATOR_CLASS"] == "GemmaDummyPastKeyValuesGenerator"
    assert 'head_dim="head_size", allow_new=True)' in edit.class_attrs["NORMALIZED_CONFIG_CLASS"]


def test_mla_caches_get_the_mla_generator_when_the_workspace_has_it(ws):
    c = ctx(ws, "GPTNeoOpenVINOConfig", "glm4_moe_lite")
    assert PKV_GENERATOR.precondition(c) is None and MLA_PKV_GENERATOR.precondition(c) is None  # not defined here
    gens = ws / "optimum/exporters/openvino/input_generators.py"
    gens.write_text("class OVMiniCPM3DummyPastKeyValuesGenerator:\n    pass\n")
    c = ctx(ws, "GPTNeoOpenVINOConfig", "glm4_moe_lite")
    assert "qk_nope_head_dim 192, qk_rope_head_dim 64, v_head_dim 256" in MLA_PKV_GENERATOR.precondition(c)
    assert MLA_PKV_GENERATOR.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "olmoe")) is None  # no MLA
    before = snapshot(ws)
    edit, _ = write(ws, c, ["mla_pkv_generator"])
    assert edit.imports == [("optimum.utils.input_generators", "DummyTextInputGenerator"),
                            ("optimum.exporters.openvino.input_generators", "OVMiniCPM3DummyPastKeyValuesGenerator")]
    after = snapshot(ws)
    assert_additive_and_parses(before, after)
    assert "from optimum.exporters.openvino.input_generators import OVMiniCPM3DummyPastKeyValuesGenerator\n" in \
        after[CONFIGS]
