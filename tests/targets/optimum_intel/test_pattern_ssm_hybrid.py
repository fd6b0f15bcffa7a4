"""The hybrid Mamba2 cache pattern: which mixers it recognises, the layout it reads from the model, the
patcher and family-list joins it writes, and how search offers it."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.join import join_family
from tools.targets.optimum_intel.patterns.ssm_hybrid import HYBRID_MAMBA2, layout_problems, mixer_classes
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
TINY_BAMBA = dict(hidden_size=64, num_hidden_layers=3, attn_layer_indices=[1], num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, vocab_size=1024, mamba_n_heads=4, mamba_d_head=32,
                  mamba_d_state=16, mamba_n_groups=1, mamba_expand=2, mamba_d_conv=4)
# what upstream optimum-intel defines for GraniteMoeHybrid, as the miniature workspace needs it (parsed only)
FAMILY_CONFIG = '''

@register_in_tasks_manager("granitemoehybrid", *["text-generation", "text-generation-with-past"], library_name="transformers")
class GraniteMoeHybridOpenVINOConfig(MambaOpenVINOConfig):
    _MODEL_PATCHER = GraniteMoeHybridModelPatcher
    MIN_TRANSFORMERS_VERSION = "5.5.0"
'''
FAMILY_PATCHER = '''

def granite_moe_hybrid_mamba_mixer_forward(self, hidden_states, cache_params=None, conv_state=None,
                                           recurrent_state=None, attention_mask=None):
    """Upstream: the recurrent form of GraniteMoeHybrid's Mamba2 mixer."""


class GraniteMoeHybridModelPatcher(OVDecoderModelPatcher):
    def __enter__(self):
        super().__enter__()
'''
DECODER_TESTS = '''

class OVModelForCausalLMIntegrationTest(unittest.TestCase):
    SUPPORTED_ARCHITECTURES = ("gpt2", "llama")
    SUPPORTED_SSM_ARCHITECTURES = (
        "granitemoehybrid",
        "mamba",
    )
    SUPPORTED_ARCHITECTURES += SUPPORTED_SSM_ARCHITECTURES
    EXPECTED_NUM_SDPA = {"gpt2": 5}

    def test_beam_search(self, model_arch):
        if model_arch in ["lfm2", "granitemoehybrid"]:
            return
        tasks = [("text-generation-with-past", "granitemoehybrid")]
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
    utils = root / "optimum/exporters/openvino/utils.py"
    utils.write_text(utils.read_text() + '\nSSM_MODELS = [\n    "mamba",\n    "granitemoehybrid",\n    "qwen3_next",\n]\n')
    decoder = root / "tests/openvino/test_decoder.py"
    text = decoder.read_text()
    decoder.write_text(text[:text.index("\nclass OVModelForCausalLMIntegrationTest")] + DECODER_TESTS)
    return root


def bamba(ws: Path, **overrides) -> PatternContext:
    raw = AutoConfig.for_model("bamba", **{**TINY_BAMBA, **overrides}).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, "GraniteMoeHybridOpenVINOConfig")


def test_the_mixer_is_recognised_by_its_forward_not_its_name():
    assert mixer_classes("bamba") == ("BambaMixer",)
    # the references themselves (Mamba2-style mixers written as another form: test_pattern_ssm_forms.py,
    # with variant steps: test_pattern_ssm_variant.py)
    assert mixer_classes("granitemoehybrid") == () and mixer_classes("zamba2") == ()


def test_layout_is_read_from_the_instantiated_model():
    kinds, problems = layout_problems(AutoConfig.for_model("bamba", **TINY_BAMBA), ("BambaMixer",))
    assert kinds == ["ssm", "attention", "ssm"] and problems == []
    # a mixer the model does not have: the config's layer labels no longer describe the built layers
    kinds, problems = layout_problems(AutoConfig.for_model("bamba", **TINY_BAMBA), ("SomeOtherMixer",))
    assert kinds == ["other", "attention", "other"]
    assert any("does not name the layers the model builds" in p for p in problems)


def test_applies_only_with_the_family_base_and_the_helpers(ws, tmp_path):
    assert "hybrid_mamba2_cache" in dict(applicable(bamba(ws)))
    assert HYBRID_MAMBA2.precondition(PatternContext(bamba(ws).analysis, ws, "LlamaOpenVINOConfig")) is None
    bare = tmp_path / "bare"
    shutil.copytree(FIXTURES, bare, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert HYBRID_MAMBA2.precondition(bamba(bare)) is None  # no recurrent mixer helper upstream: nothing to reuse


def test_search_offers_the_family_base_first(ws):
    ctx = bamba(ws)
    first = search(ctx.analysis, ws, read_registry(ws), 3)[0]
    assert first.id == "granitemoehybrid+hybrid_mamba2_cache" and first.params["base_class"] == ctx.base_class


def test_edit_writes_the_patcher_registration_and_family_lists(ws):
    ctx = bamba(ws)
    edit = combined_edit(ctx, ["hybrid_mamba2_cache"])
    assert edit.min_transformers == "5.5.0" and edit.joins == ["granitemoehybrid"]
    spec = PatchSpec(model_type="bamba", base_class=ctx.base_class, min_transformers_version="5.5.0",
                     display_name="Bamba", tiny_config={"model_type": "bamba"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins)
    result = write_patch(ws, spec)
    patcher = (ws / "optimum/exporters/openvino/model_patcher.py").read_text()
    cls = next(n for n in ast.parse(patcher).body if isinstance(n, ast.ClassDef) and n.name == "BambaModelPatcher")
    assert [b.id for b in cls.bases] == ["GraniteMoeHybridModelPatcher"]
    assert 'MIXER_CLASSES = ("BambaMixer",)' in patcher and "granite_moe_hybrid_mamba_mixer_forward(" in patcher
    configs = (ws / "optimum/exporters/openvino/model_configs.py").read_text()
    assert "class BambaOpenVINOConfig(GraniteMoeHybridOpenVINOConfig):" in configs
    assert "_MODEL_PATCHER = BambaModelPatcher" in configs
    utils = (ws / "optimum/exporters/openvino/utils.py").read_text()
    assert '"granitemoehybrid",\n    "bamba",\n' in utils
    tests = (ws / "tests/openvino/test_decoder.py").read_text()
    assert '"granitemoehybrid",\n        "bamba",\n        "mamba",' in tests  # the SSM table
    assert 'if model_arch in ["lfm2", "granitemoehybrid", "bamba"]:' in tests  # the inline family list
    assert '("text-generation-with-past", "granitemoehybrid")]' in tests  # (task, type) pairs are not a family list
    assert 'SUPPORTED_ARCHITECTURES = ("gpt2", "llama")' in tests  # reached through the SSM table, not twice
    assert any("SUPPORTED_SSM_ARCHITECTURES" in n for n in result.notes)
    assert "tests/openvino/test_decoder.py" in result.files


def test_join_is_idempotent_and_leaves_other_lists_alone():
    text = 'A = ["x", "ref"]\nB = ["x", "y"]\nC = [("task-a", "ref")]\n'
    once = join_family(text, "ref", "new")
    assert once.changed and once.text == 'A = ["x", "ref", "new"]\nB = ["x", "y"]\nC = [("task-a", "ref")]\n'
    assert not join_family(once.text, "ref", "new").changed


def test_a_cap_lifted_by_none_in_the_nearest_class_is_no_cap(ws):
    # GraniteMoeHybridOpenVINOConfig sets MAX_TRANSFORMERS_VERSION = None over MambaOpenVINOConfig's cap
    configs = ws / "optimum/exporters/openvino/model_configs.py"
    configs.write_text(configs.read_text().replace('    MIN_TRANSFORMERS_VERSION = "5.5.0"\n',
                                                   '    MIN_TRANSFORMERS_VERSION = "5.5.0"\n'
                                                   '    MAX_TRANSFORMERS_VERSION = None\n'))
    spec = PatchSpec(model_type="bamba", base_class="GraniteMoeHybridOpenVINOConfig", min_transformers_version="4.0",
                     display_name="Bamba", tiny_config={}, expected_sdpa=None)
    notes = write_patch(ws, spec).notes
    assert not any("versions not compared" in n or "caps transformers" in n for n in notes), notes
