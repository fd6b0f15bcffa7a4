"""The lightning hybrid cache pattern: the attention it recognises (and the near misses it refuses), the rewrite
it writes against transformers' own forward, the layout read from the model, the edit and how search offers it."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.lightning_hybrid import (LIGHTNING_HYBRID, layout_problems,
                                                                   lightning_classes, matches_reference, names)
from tools.targets.optimum_intel.patterns.lightning_reference import REFERENCE
from tools.targets.optimum_intel.patterns.lightning_source import forward_source
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
TINY = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            intermediate_size=128, vocab_size=1024, num_local_experts=4, num_experts_per_tok=2, block_size=4,
            layer_types=["linear_attention", "full_attention", "linear_attention"])
FAMILY_CONFIG = '''

@register_in_tasks_manager("granitemoehybrid", *["text-generation", "text-generation-with-past"], library_name="transformers")
class GraniteMoeHybridOpenVINOConfig(MambaOpenVINOConfig):
    _MODEL_PATCHER = GraniteMoeHybridModelPatcher
    MIN_TRANSFORMERS_VERSION = "5.5.0"
'''
FAMILY_PATCHER = '''

class GraniteMoeHybridModelPatcher(OVDecoderModelPatcher):
    def __enter__(self):
        super().__enter__()
'''
GENERATORS = '''from optimum.utils import DEFAULT_DUMMY_SHAPES, DummyPastKeyValuesGenerator


class Zamba2DummyPastKeyValuesGenerator(DummyPastKeyValuesGenerator):
    SUPPORTED_INPUT_NAMES = ("cache_params",)
'''
DECODER_TESTS = '''

class OVModelForCausalLMIntegrationTest(unittest.TestCase):
    SUPPORTED_ARCHITECTURES = ("gpt2", "llama")
    SUPPORTED_SSM_ARCHITECTURES = (
        "granitemoehybrid",
        "mamba",
    )
    SUPPORTED_ARCHITECTURES += SUPPORTED_SSM_ARCHITECTURES

    def test_compare_to_transformers(self, model_arch):
        if is_stateful:
            self.assertTrue(len(ov_outputs.cache_params.conv_states) > 0)
            if model_arch not in ["lfm2", "lfm2_moe"]:
                self.assertTrue(len(ov_outputs.cache_params.ssm_states) > 0)
'''


@pytest.fixture
def ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    configs = root / "optimum/exporters/openvino/model_configs.py"
    configs.write_text(configs.read_text().replace("    MixtralModelPatcher,\n",
                                                   "    GraniteMoeHybridModelPatcher,\n    MixtralModelPatcher,\n")
                       + FAMILY_CONFIG)
    patcher = root / "optimum/exporters/openvino/model_patcher.py"
    patcher.write_text(patcher.read_text() + FAMILY_PATCHER)
    (root / "optimum/exporters/openvino/input_generators.py").write_text(GENERATORS)
    utils = root / "optimum/exporters/openvino/utils.py"
    utils.write_text(utils.read_text() + '\nSSM_MODELS = [\n    "mamba",\n    "granitemoehybrid",\n]\n')
    decoder = root / "tests/openvino/test_decoder.py"
    text = decoder.read_text()
    decoder.write_text(text[:text.index("\nclass OVModelForCausalLMIntegrationTest")] + DECODER_TESTS)
    return root


def minimax(ws: Path, base: str = "GraniteMoeHybridOpenVINOConfig", **overrides) -> PatternContext:
    raw = AutoConfig.for_model("minimax", **{**TINY, **overrides}).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, base)


def _reference_class() -> ast.ClassDef:
    return next(n for n in ast.parse(REFERENCE).body if isinstance(n, ast.ClassDef))


# -- what is recognised ---------------------------------------------------------------------------------

def test_the_lightning_attention_is_recognised_by_its_source_not_its_name():
    assert lightning_classes("minimax") == ("MiniMaxLightningAttention",)
    assert lightning_classes("minimax_m2") == () and lightning_classes("qwen3_next") == ()
    assert lightning_classes("mixtral") == ()


def test_local_names_do_not_matter_but_the_computation_does():
    source = textwrap.dedent(REFERENCE)
    assert matches_reference(_reference_class())
    renamed = source.replace("attn_weights_inter", "kv_state")
    assert matches_reference(next(n for n in ast.parse(renamed).body if isinstance(n, ast.ClassDef)))
    near_misses = [
        # the decode path's per-token decay is another one
        source.replace("ratio = torch.exp(-self.slope_rate)", "ratio = torch.exp(-2 * self.slope_rate)"),
        # the decays are built otherwise from the slope
        source.replace("diagonal_decay = slope_rate * diagonal_decay", "diagonal_decay = 0.5 * slope_rate * diagonal_decay"),
        # the padding mask is not applied
        source.replace("value_states = value_states.masked_fill(~attention_mask.unsqueeze(1).unsqueeze(-1), 0)",
                       "pass"),
    ]
    for variant in near_misses:
        assert variant != source
        assert not matches_reference(next(n for n in ast.parse(variant).body if isinstance(n, ast.ClassDef)))


# -- the rewrite against transformers' own forward ------------------------------------------------------

def _modules():
    from transformers.models.minimax.modeling_minimax import MiniMaxLightningAttention

    torch.manual_seed(0)
    config = AutoConfig.for_model("minimax", **TINY)
    module = MiniMaxLightningAttention(config, layer_idx=0).eval()
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.2)
    namespace = {"torch": torch}
    exec(forward_source(names_for_test()), namespace)  # noqa: S102 - the source the pattern writes
    return module, namespace["_minimax_lightning_attention_forward"]


def names_for_test():
    from tools.targets.optimum_intel.patterns.lightning_source import Names

    return Names(model_type="minimax", forward="_minimax_lightning_attention_forward", wrap="W", patcher="P",
                 generator="G", label="linear_attention", lightning=("MiniMaxLightningAttention",), experts=True)


class _State:
    def __init__(self):
        self.state = None

    def get_linear_cache(self, layer_idx):
        return self.state

    def set_linear_cache(self, layer_idx, state):
        self.state = state


def test_the_written_forward_is_transformers_block_loop_for_any_length_and_a_continuation():
    from transformers.models.minimax.modeling_minimax import MiniMaxCache

    module, rewritten = _modules()
    for length in (1, 3, 4, 9, 13):  # block_size 4: within, at and across block boundaries
        x = torch.randn(2, length, 64)
        mask = torch.ones(2, length, dtype=torch.long)
        mask[1, :min(2, length - 1)] = 0  # left padding on the second row
        with torch.no_grad():
            want, want_state = module(x, None, mask)
            got, got_state = rewritten(module, x, None, mask)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_state, want_state, atol=1e-5, rtol=1e-5)
    # a prompt then a chunk of several tokens with the state: transformers' cached path, token by token
    x = torch.randn(1, 11, 64)
    with torch.no_grad():
        cache, ours = MiniMaxCache(), _State()
        module(x[:, :6], None, None, past_key_values=cache)
        want, _ = module(x[:, 6:], None, None, past_key_values=cache)
        rewritten(module, x[:, :6], None, torch.ones(1, 6), past_key_values=ours)
        got, _ = rewritten(module, x[:, 6:], None, torch.ones(1, 11), past_key_values=ours)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.state, cache.get_linear_cache(0), atol=1e-5, rtol=1e-5)


# -- the layout -----------------------------------------------------------------------------------------

def test_layout_is_read_from_the_instantiated_model():
    label, problems = layout_problems(AutoConfig.for_model("minimax", **TINY), ("MiniMaxLightningAttention",))
    assert label == "linear_attention" and problems == []
    label, problems = layout_problems(AutoConfig.for_model("minimax", **TINY), ("SomeOtherAttention",))
    assert label is None and "no lightning attention layer" in problems
    all_softmax = {**TINY, "layer_types": ["full_attention"] * 3}
    label, problems = layout_problems(AutoConfig.for_model("minimax", **all_softmax), ("MiniMaxLightningAttention",))
    assert label is None


# -- applicability, search, the edit --------------------------------------------------------------------

def test_applies_only_on_the_family_base_and_takes_over_the_experts(ws, tmp_path):
    found = dict(applicable(minimax(ws)))
    assert "lightning_hybrid_cache" in found and "moe_batched_mm" not in found  # its patcher routes the experts
    on_mixtral = dict(applicable(minimax(ws, "MixtralOpenVINOConfig")))
    assert "lightning_hybrid_cache" not in on_mixtral and "moe_batched_mm" in on_mixtral
    bare = tmp_path / "bare"
    shutil.copytree(FIXTURES, bare, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert LIGHTNING_HYBRID.precondition(minimax(bare)) is None  # no hybrid cache family upstream


def test_search_offers_the_family_base_first(ws):
    ctx = minimax(ws)
    first = search(ctx.analysis, ws, read_registry(ws), 3)[0]
    assert first.id == "granitemoehybrid+lightning_hybrid_cache" and first.params["base_class"] == ctx.base_class


def test_edit_writes_patcher_generator_config_method_family_lists_and_test_exemption(ws):
    ctx = minimax(ws)
    edit = combined_edit(ctx, ["lightning_hybrid_cache"])
    assert edit.joins == ["granitemoehybrid"] and edit.no_conv_state
    n = names(ctx)
    spec = PatchSpec(model_type="minimax", base_class=ctx.base_class, min_transformers_version="5.5.0",
                     display_name="MiniMax", tiny_config={"model_type": "minimax"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins,
                     module_blocks=edit.module_blocks, methods=edit.methods, no_conv_state=edit.no_conv_state)
    write_patch(ws, spec)
    patcher = (ws / "optimum/exporters/openvino/model_patcher.py").read_text()
    tree = ast.parse(patcher)
    cls = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == n.patcher)
    assert [b.id for b in cls.bases] == ["OVDecoderModelPatcher"]
    assert "register_ov_batched_mm(self)" in patcher and 'if type(module).__name__ in ("MiniMaxLightningAttention",)' in patcher
    assert 'kind == "linear_attention"' in patcher and n.wrap in {c.name for c in tree.body if isinstance(c, ast.ClassDef)}
    generators = (ws / "optimum/exporters/openvino/input_generators.py").read_text()
    assert f"class {n.generator}(DummyPastKeyValuesGenerator):" in generators
    configs = (ws / "optimum/exporters/openvino/model_configs.py").read_text()
    config_cls = next(c for c in ast.parse(configs).body if isinstance(c, ast.ClassDef)
                      and c.name == "MinimaxOpenVINOConfig")
    assert [b.id for b in config_cls.bases] == ["GraniteMoeHybridOpenVINOConfig"]
    assert [f.name for f in config_cls.body if isinstance(f, ast.FunctionDef)] == ["add_past_key_values"]
    assert f"DUMMY_PKV_GENERATOR_CLASS = {n.generator}" in configs and f"_MODEL_PATCHER = {n.patcher}" in configs
    assert '"granitemoehybrid",\n    "minimax",\n' in (ws / "optimum/exporters/openvino/utils.py").read_text()
    tests = (ws / "tests/openvino/test_decoder.py").read_text()
    assert ('if model_arch not in ["minimax"]:\n'
            '                self.assertTrue(len(ov_outputs.cache_params.conv_states) > 0)') in tests
