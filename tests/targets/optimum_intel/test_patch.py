"""write_patch on a miniature optimum-intel workspace: additive, idempotent, graceful."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools.source.literals import literal_keys
from tools.targets.optimum_intel import fixture
from tools.targets.optimum_intel.patch import PatchSpec, _registrations, config_class_name, write_patch
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
UTILS_TESTS = "tests/openvino/utils_tests.py"
TINY = {"model_type": "cwm", "vocab_size": 1024, "hidden_size": 64, "num_hidden_layers": 2, "sliding_window": 8,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 1000000.0, "factor": 16.0, "high_freq_factor": 4.0,
                            "low_freq_factor": 1.0, "original_max_position_embeddings": 128}}


def spec(model_type: str = "cwm", **kw) -> PatchSpec:
    fields = dict(model_type=model_type, base_class="LlamaOpenVINOConfig", min_transformers_version="5.0.0",
                  display_name=model_type.upper(), tiny_config=dict(TINY, model_type=model_type), expected_sdpa=2)
    return PatchSpec(**{**fields, **kw})


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def registrations(root: Path) -> set[tuple[str, str]]:
    tree = ast.parse((root / CONFIGS).read_text())
    return {(mt, cls) for cls, regs in _registrations(tree).items() for mt, _ in regs}


def test_class_names_follow_upstream_style():
    assert config_class_name("cwm") == "CwmOpenVINOConfig"
    assert config_class_name("seed_oss") == "SeedOssOpenVINOConfig"
    assert config_class_name("hunyuan_v1_dense") == "HunyuanV1DenseOpenVINOConfig"
    assert config_class_name("qwen3_5", {"Qwen35OpenVINOConfig"}) == "Qwen3_5OpenVINOConfig"


def test_full_patch_is_additive_and_parses(ws):
    before = snapshot(ws)
    regs_before = registrations(ws)
    result = write_patch(ws, spec(expected_int8={"model": 32}))
    after = snapshot(ws)
    for rel, text in after.items():
        if rel.endswith(".py"):
            ast.parse(text)
    assert regs_before < registrations(ws) and ("cwm", "CwmOpenVINOConfig") in registrations(ws)
    assert set(result.files) == set(result.changed) == {rel for rel in after if before.get(rel) != after[rel]}
    for rel in before:  # nothing removed: every original line is still there
        assert not set(before[rel].splitlines()) - set(after[rel].splitlines()), rel
    for rel, table in [("tests/openvino/test_decoder.py", "SUPPORTED_ARCHITECTURES"),
                       ("tests/openvino/test_decoder.py", "EXPECTED_NUM_SDPA"),
                       ("tests/openvino/test_export.py", "SUPPORTED_ARCHITECTURES"),
                       (UTILS_TESTS, "HUB_MODEL_NAMES"), (UTILS_TESTS, "_ARCHITECTURES_TO_EXPECTED_INT8")]:
        old, new = literal_keys(before[rel], table), literal_keys(after[rel], table)
        assert set(old) < set(new) and "cwm" in new, (rel, table)
    cli = literal_keys(after["tests/openvino/test_exporters_cli.py"], "SUPPORTED_ARCHITECTURES")
    assert ("text-generation-with-past", "cwm") in cli and result.skipped == []


def test_config_class_follows_its_base_with_the_base_tasks(ws):
    result = write_patch(ws, spec(class_attrs={"DUMMY_PKV_GENERATOR_CLASS": "MistralDummyPastKeyValuesGenerator"}))
    tree = ast.parse((ws / CONFIGS).read_text())
    names = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert names[names.index("LlamaOpenVINOConfig") + 1] == "CwmOpenVINOConfig"
    tasks = dict(_registrations(tree)["CwmOpenVINOConfig"])["cwm"]
    # the base's tasks, minus those transformers has no CWM class for
    assert tasks == ["feature-extraction", "feature-extraction-with-past", "text-generation",
                     "text-generation-with-past"]
    assert any("text-classification, image-text-to-text" in n for n in result.notes)
    text = (ws / CONFIGS).read_text()
    assert ('class CwmOpenVINOConfig(LlamaOpenVINOConfig):\n    MIN_TRANSFORMERS_VERSION = "5.0.0"\n'
            "    DUMMY_PKV_GENERATOR_CLASS = MistralDummyPastKeyValuesGenerator\n") in text
    assert '    library_name="transformers",\n)\nclass CwmOpenVINOConfig' in text


def test_applying_twice_equals_applying_once(ws):
    first = write_patch(ws, spec(expected_int8={"model": 32}))
    once = snapshot(ws)
    second = write_patch(ws, spec(expected_int8={"model": 32}))
    assert snapshot(ws) == once
    assert second.changed == [] and sorted(second.files) == sorted(first.files)


def test_two_models_share_one_builder_and_name_their_hub_ids(ws):
    write_patch(ws, spec("cwm"))
    helper = (ws / fixture.HELPER).read_text()
    write_patch(ws, spec("seed_oss", min_transformers_version="4.57.0", display_name="SeedOss"))
    text = (ws / UTILS_TESTS).read_text()
    assert (ws / fixture.HELPER).read_text() == helper == fixture.HELPER_SOURCE
    assert text.count(fixture.HOOK_IMPORT) == 1 and text.count("with_local_fallbacks(MODEL_NAMES)") == 1
    # the fallback applies after upstream's cache resolution, its import joins the module's imports
    assert text.index("MODEL_NAMES = dict(HUB_MODEL_NAMES)") < text.index("with_local_fallbacks(MODEL_NAMES)")
    assert text.index("import torch\n") < text.index(fixture.HOOK_IMPORT) < text.index("def _create_tiny_widget")
    names = literal_keys(text, "HUB_MODEL_NAMES")
    assert names.index("cwm") == names.index("bert") + 1 and names.index("seed_oss") == names.index("mamba") + 1
    # the table's own testing organisation ("org" in the miniature), upstream's naming
    assert '    "seed_oss": "org/tiny-random-seed_oss",\n' in text
    entry = json.loads((ws / fixture.config_path("seed_oss")).read_text())
    assert entry == {"hub_id": "org/tiny-random-seed_oss", "seed": 42,
                     "config": dict(TINY, model_type="seed_oss")}


def test_onnx_removal_and_docs(ws):
    result = write_patch(ws, spec("seed_oss", display_name="SeedOss"))
    assert "seed_oss" not in literal_keys((ws / "optimum/exporters/openvino/utils.py").read_text(),
                                          "ONNX_SUPPORTED_ARCHITECTURES")
    assert "optimum/exporters/openvino/utils.py" in result.changed
    assert "- SAM\n- SeedOss\n- SEW\n" in (ws / "docs/source/openvino/models.mdx").read_text()
    other = write_patch(ws, spec("cwm", display_name="CWM"))
    assert "optimum/exporters/openvino/utils.py" not in other.files  # cwm was never ONNX-listed
    assert "- Cohere\n- CWM\n- Falcon\n" in (ws / "docs/source/openvino/models.mdx").read_text()


def test_unknown_counts_are_noted_not_guessed(ws):
    result = write_patch(ws, spec(expected_sdpa=None))
    decoder = (ws / "tests/openvino/test_decoder.py").read_text()
    assert "cwm" in literal_keys(decoder, "SUPPORTED_ARCHITECTURES")
    assert "cwm" not in literal_keys(decoder, "EXPECTED_NUM_SDPA")
    assert any("SDPA count unknown" in n for n in result.notes)
    assert any("test_exporters_cli.py" in s and "int8" in s for s in result.skipped)
    assert "tests/openvino/test_exporters_cli.py" not in result.files


def test_first_write_before_measuring_makes_no_stale_notes(ws):
    # the PR body carries the first write's notes; the counts arrive with the write after the export
    result = write_patch(ws, spec(expected_sdpa=None, measured=False))
    assert not any("SDPA count unknown" in n for n in result.notes)
    assert not any("int8" in s for s in result.skipped)
    assert "cwm" not in literal_keys((ws / "tests/openvino/test_decoder.py").read_text(), "EXPECTED_NUM_SDPA")


def test_source_distribution_without_tests_or_docs(ws):
    shutil.rmtree(ws / "tests")
    shutil.rmtree(ws / "docs")
    result = write_patch(ws, spec())
    assert sorted(result.files) == [CONFIGS]
    assert any("tests/ absent" in n for n in result.notes) and any("documentation skipped" in n for n in result.notes)


def test_missing_table_is_skipped_with_a_reason(ws):
    path = ws / "tests/openvino/test_export.py"
    path.write_text(path.read_text().replace("SUPPORTED_ARCHITECTURES = {", "TABLE = {"))
    result = write_patch(ws, spec())
    assert any(s.startswith("tests/openvino/test_export.py") for s in result.skipped)
    assert "tests/openvino/test_decoder.py" in result.changed


def test_caller_errors_and_version_notes(ws):
    with pytest.raises(ValueError, match="not found"):
        write_patch(ws, spec(base_class="NopeOpenVINOConfig"))
    with pytest.raises(ValueError, match="Undefined"):
        write_patch(ws, spec(class_attrs={"X": "Undefined()"}))
    assert "cwm" not in {mt for mt, _ in registrations(ws)}  # nothing half-written
    result = write_patch(ws, spec(base_class="ExaoneOpenVINOConfig"))
    assert any("MAX_TRANSFORMERS_VERSION" in n for n in result.notes)


def test_existing_registration_is_left_alone(ws):
    before = snapshot(ws)
    result = write_patch(ws, spec("mamba", display_name="Mamba"))
    assert any("registered by MambaOpenVINOConfig" in n for n in result.notes)
    assert snapshot(ws)[CONFIGS] == before[CONFIGS]


def test_name_clash_picks_a_free_class_name(ws):
    write_patch(ws, spec("toy_lm", display_name="ToyLM"))
    assert ("toy_lm", "Toy_LmOpenVINOConfig") in registrations(ws)


def run_helper(ws: Path, tmp_path: Path, body: str) -> dict:
    """Import the tiny_random_models.py the patch wrote (as the tests do), run `body`; returns what it prints."""
    script = "import json, sys\nsys.path.insert(0, %r)\nimport tiny_random_models as h\n" % str(
        ws / "tests" / "openvino") + textwrap.dedent(body)
    env = dict(os.environ, TMPDIR=str(tmp_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


QWEN2 = {"model_type": "qwen2", "vocab_size": 512, "hidden_size": 16, "intermediate_size": 32,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "bos_token_id": 5,
         "eos_token_id": 7, "pad_token_id": 7}


@pytest.mark.integration
def test_fallback_builds_the_tiny_model_offline_from_its_config(ws, tmp_path):
    """What the tests see: MODEL_NAMES resolves the Hub id to a local build of the config, cached."""
    write_patch(ws, spec("qwen2", tiny_config=QWEN2))
    facts = run_helper(ws, tmp_path, """
        names = {"qwen2": "org/tiny-random-qwen2", "bert": "org/tiny-bert"}
        path = h.with_local_fallbacks(names)["qwen2"]
        again = h.with_local_fallbacks(names)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        ids = tok("The quick brown fox", return_tensors="pt").input_ids
        print(json.dumps({"same": path == again["qwen2"], "bert": again["bert"], "bos": tok.bos_token_id,
                          "eos": tok.eos_token_id, "pad": tok.pad_token_id, "max_id": int(ids.max()),
                          "logits": list(model(ids).logits.shape)}))
    """)
    assert facts["same"] and facts["bert"] == "org/tiny-bert"
    assert (facts["bos"], facts["eos"], facts["pad"]) == (5, 7, 7)
    assert facts["max_id"] < 512 and facts["logits"][-1] == 512


def test_the_script_builds_the_same_weights_as_the_fallback(ws, tmp_path):
    """A reviewer's `python tests/openvino/tiny_random_models.py <type>` gives the model the tests used."""
    write_patch(ws, spec("qwen2", tiny_config=QWEN2))
    out = subprocess.run([sys.executable, str(ws / fixture.HELPER), "qwen2", "--output", str(tmp_path / "m")],
                         env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    facts = run_helper(ws, tmp_path, f"""
        from safetensors.torch import load_file
        a = load_file({str(tmp_path / "m" / "model.safetensors")!r})
        b = load_file(h.with_local_fallbacks({{"qwen2": "org/tiny-random-qwen2"}})["qwen2"] + "/model.safetensors")
        print(json.dumps({{"same": sorted(a) == sorted(b) and all(bool((a[k] == b[k]).all()) for k in a)}}))
    """)
    assert facts["same"]


def test_fallback_draws_a_zero_initialised_router(ws, tmp_path):
    """Ernie 4.5 MoE leaves its router to the checkpoint (zeros): the builder must not tie every expert."""
    config = {"model_type": "ernie4_5_moe", "vocab_size": 512, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "moe_num_experts": 4,
              "moe_k": 2, "moe_intermediate_size": 16, "moe_layer_start_index": 0}
    write_patch(ws, spec("ernie4_5_moe", tiny_config=config))
    facts = run_helper(ws, tmp_path, """
        path = h.build_cached("ernie4_5_moe")
        from pathlib import Path
        from safetensors.torch import load_file
        weights = load_file(str(Path(path) / "model.safetensors"))
        gates = [k for k in weights if k.endswith("mlp.gate.weight")]
        print(json.dumps({"gates": gates, "zero": [k for k in gates if not weights[k].any()]}))
    """)
    assert facts["gates"] and not facts["zero"]


def test_fallback_builds_a_model_whose_config_has_no_bos_or_eos(ws, tmp_path):
    """RoCBert's config (transformers 5) has no bos/eos attribute at all: reading one failed the collection."""
    config = {"model_type": "roc_bert", "vocab_size": 512, "hidden_size": 16, "intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 2, "pad_token_id": 0, "is_decoder": True,
              "pronunciation_embed_dim": 8, "pronunciation_vocab_size": 16, "shape_embed_dim": 8,
              "shape_vocab_size": 16}
    write_patch(ws, spec("roc_bert", tiny_config=config))
    facts = run_helper(ws, tmp_path, """
        path = h.with_local_fallbacks({"roc_bert": "org/tiny-random-roc_bert"})["roc_bert"]
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(path)
        print(json.dumps({"pad": tok.pad_token_id, "vocab": len(tok)}))
    """)
    assert facts["pad"] == 0 and facts["vocab"] <= 512


def test_fixture_config_of_a_text_sub_config_without_auto_mapping(tmp_path):
    from tools.targets.optimum_intel.target import tiny_fixture_config

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "emu3_text_model", "hidden_size": 16,
                                                      "transformers_version": "5.5.4"}))
    assert tiny_fixture_config(tmp_path) == {"model_type": "emu3_text_model", "hidden_size": 16}


def test_written_min_version_reads_what_the_patch_wrote(ws, tmp_path):
    from tools.targets.optimum_intel.target import OptimumIntelTarget

    write_patch(ws, spec("toy_lm", display_name="ToyLM", min_transformers_version="4.99.0"))
    target = OptimumIntelTarget(tmp_path / "cache")
    assert target.written_min_version(ws, "toy_lm") == "4.99.0"
    assert target.written_min_version(ws, "not_registered") is None
