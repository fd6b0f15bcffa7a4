"""The gated-delta hybrid cache pattern: which mixers it recognises (and the near misses it refuses), the
layout it reads from the instantiated model, the patcher, registration and family-list joins it writes, and
how search offers the family base first although that base caps transformers."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.gated_delta import (GATED_DELTA_HYBRID, _conv_problems, _modeling,
                                                              _reference_shape, layout_problems, mixer_classes)
from tools.targets.optimum_intel.patterns.ssm_family import prefill_shape
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
MIXER = "OlmoHybridGatedDeltaNet"
TINY = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16,
            linear_value_head_dim=16, pad_token_id=0, eos_token_id=1)
# what upstream optimum-intel defines for Qwen3-Next, as the miniature workspace needs it (parsed only)
FAMILY_CONFIG = '''

@register_in_tasks_manager("qwen3_next", *["text-generation", "text-generation-with-past"], library_name="transformers")
class Qwen3NextOpenVINOConfig(TextDecoderWithPositionIdsOpenVINOConfig):
    DUMMY_INPUT_GENERATOR_CLASSES = (DummyTextInputGenerator, Qwen3NextDummyPastKeyValuesGenerator)
    DUMMY_PKV_GENERATOR_CLASS = Qwen3NextDummyPastKeyValuesGenerator
    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
    MAX_TRANSFORMERS_VERSION = "4.57.6"
    _MODEL_PATCHER = Qwen3NextModelPatcher
'''
FAMILY_PATCHER = '''
from optimum.exporters.openvino._ov_ops import convert_recurrent_attention_cell


def ov_causal_conv1d(conv_state, input_embeds, weight, bias):
    """Upstream: the causal conv OpenVINO fuses."""


def patched_recurrent_gated_delta_rule(self, query, key, value, g, beta, initial_state, output_final_state,
                                       use_qk_l2norm_in_kernel=False):
    """Upstream: the gated delta rule through RecurrentAttentionCell."""


class RecurrentAttentionCell(torch.nn.Module):
    pass


class Qwen3NextModelPatcher(OVDecoderModelPatcher):
    def __enter__(self):
        super().__enter__()
'''


@pytest.fixture
def ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    configs = root / "optimum/exporters/openvino/model_configs.py"
    configs.write_text(configs.read_text().replace("    MixtralModelPatcher,\n",
                                                   "    MixtralModelPatcher,\n    Qwen3NextModelPatcher,\n")
                       .replace("from optimum.utils.input_generators import GemmaDummyPastKeyValuesGenerator\n",
                                "from optimum.utils.input_generators import GemmaDummyPastKeyValuesGenerator\n"
                                "from .input_generators import Qwen3NextDummyPastKeyValuesGenerator\n")
                       + FAMILY_CONFIG)
    patcher = root / "optimum/exporters/openvino/model_patcher.py"
    patcher.write_text(patcher.read_text() + FAMILY_PATCHER)
    utils = root / "optimum/exporters/openvino/utils.py"
    utils.write_text(utils.read_text() + '\nSSM_MODELS = [\n    "granitemoehybrid",\n    "qwen3_next",\n]\n')
    return root


def olmo(ws: Path, base: str = "Qwen3NextOpenVINOConfig", **overrides) -> PatternContext:
    raw = AutoConfig.for_model("olmo_hybrid", **{**TINY, **overrides}).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, base)


def _olmo_forward() -> ast.FunctionDef:
    cls = next(n for n in _modeling("olmo_hybrid").body if isinstance(n, ast.ClassDef) and n.name == MIXER)
    return next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward")


def test_the_mixer_is_recognised_by_its_forward_not_its_name():
    assert mixer_classes("olmo_hybrid") == (MIXER,)
    # gated-delta mixers with fused projections and one conv over the concatenation are other forwards
    assert mixer_classes("qwen3_next") == () and mixer_classes("qwen3_5_text") == ()
    assert mixer_classes("llama") == ()


@pytest.mark.parametrize("near_miss", ["no doubled beta", "no l2 norm", "no output gate"])
def test_a_forward_computing_something_else_is_refused(near_miss):
    forward = _olmo_forward()
    assert prefill_shape(forward) == _reference_shape()
    source = ast.unparse(forward)
    changed = {"no doubled beta": source.replace("beta = beta * 2.0", "beta = beta * 1.0"),
               "no l2 norm": source.replace("use_qk_l2norm_in_kernel=True", "use_qk_l2norm_in_kernel=False"),
               "no output gate": source.replace("self.o_norm(output, gate)", "self.o_norm(output)")}[near_miss]
    assert changed != source
    assert prefill_shape(ast.parse(changed).body[0]) != _reference_shape()


def test_layout_is_read_from_the_instantiated_model():
    config = AutoConfig.for_model("olmo_hybrid", **TINY, layer_types=["linear_attention", "full_attention",
                                                                      "linear_attention", "full_attention"])
    kinds, problems = layout_problems(config, (MIXER,))
    assert kinds == ["linear_attention", "full_attention", "linear_attention", "full_attention"] and problems == []
    # a mixer the model does not have: its layers are no longer what config.layer_types names
    kinds, problems = layout_problems(config, ("SomeOtherMixer",))
    assert kinds == ["other", "full_attention", "other", "full_attention"]
    assert any("does not name the layers the model builds" in p for p in problems)


def test_value_heads_the_family_generator_cannot_size_are_refused():
    config = AutoConfig.for_model("olmo_hybrid", **{**TINY, "linear_num_value_heads": 3})
    _, problems = layout_problems(config, (MIXER,))
    assert any("not a multiple" in p for p in problems)


def test_convs_that_are_not_depthwise_causal_are_refused():
    want = {"num_k_heads": 2, "head_k_dim": 16, "num_v_heads": 4, "head_v_dim": 16, "kernel": 4}

    def conv(width, groups, padding=3):
        module = torch.nn.Conv1d(width, width, 4, groups=groups, padding=padding, bias=False)
        module.act_fn = torch.nn.functional.silu
        return module

    good = SimpleNamespace(q_conv1d=conv(32, 32), k_conv1d=conv(32, 32), v_conv1d=conv(64, 64))
    assert _conv_problems(0, good, want) == []
    dense = SimpleNamespace(q_conv1d=conv(32, 1), k_conv1d=conv(32, 32), v_conv1d=conv(64, 64))
    assert any("q_conv1d" in p for p in _conv_problems(0, dense, want))
    centred = SimpleNamespace(q_conv1d=conv(32, 32), k_conv1d=conv(32, 32), v_conv1d=conv(64, 64, padding=1))
    assert any("v_conv1d" in p for p in _conv_problems(0, centred, want))


def test_applies_only_with_the_family_base_and_the_helpers(ws, tmp_path):
    assert "gated_delta_hybrid_cache" in dict(applicable(olmo(ws)))
    assert GATED_DELTA_HYBRID.precondition(olmo(ws, base="LlamaOpenVINOConfig")) is None
    bare = tmp_path / "bare"
    shutil.copytree(FIXTURES, bare, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert GATED_DELTA_HYBRID.precondition(olmo(bare)) is None  # no recurrent cell upstream: nothing to reuse


def test_search_offers_the_family_base_first_despite_its_cap(ws):
    ctx = olmo(ws)
    first = search(ctx.analysis, ws, read_registry(ws), 3)[0]
    assert first.id == "qwen3_next+gated_delta_hybrid_cache" and first.params["base_class"] == ctx.base_class


def test_edit_writes_the_patcher_registration_and_family_lists(ws):
    ctx = olmo(ws)
    edit = combined_edit(ctx, ["gated_delta_hybrid_cache"])
    assert edit.joins == ["qwen3_next"]
    assert edit.class_attrs["MAX_TRANSFORMERS_VERSION"] == "None"
    spec = PatchSpec(model_type="olmo_hybrid", base_class=ctx.base_class, min_transformers_version="5.4.0",
                     display_name="OLMo Hybrid", tiny_config={"model_type": "olmo_hybrid"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins)
    result = write_patch(ws, spec)
    patcher = (ws / "optimum/exporters/openvino/model_patcher.py").read_text()
    cls = next(n for n in ast.parse(patcher).body if isinstance(n, ast.ClassDef) and n.name == "OlmoHybridModelPatcher")
    assert [b.id for b in cls.bases] == ["OVDecoderModelPatcher"]
    assert f'MIXER_CLASSES = ("{MIXER}",)' in patcher
    assert 'LINEAR, FULL = "linear_attention", "full_attention"' in patcher
    for used in ("ov_causal_conv1d(", "patched_recurrent_gated_delta_rule(", "RecurrentAttentionCell()"):
        assert used in patcher
    configs = (ws / "optimum/exporters/openvino/model_configs.py").read_text()
    assert "class OlmoHybridOpenVINOConfig(Qwen3NextOpenVINOConfig):" in configs
    assert "_MODEL_PATCHER = OlmoHybridModelPatcher" in configs and "MAX_TRANSFORMERS_VERSION = None" in configs
    assert not any("caps transformers" in n for n in result.notes), result.notes
    utils = (ws / "optimum/exporters/openvino/utils.py").read_text()
    assert '"qwen3_next",\n    "olmo_hybrid",\n' in utils


def test_the_written_recurrent_form_decodes_what_the_model_computes_over_the_whole_sequence():
    """The patcher as written, run in PyTorch (no OpenVINO): prefill then one token at a time through the flat
    states must give the logits of one uncached forward over the sequence (the export traces exactly this)."""
    import optimum.exporters.openvino.model_patcher as upstream
    from optimum.exporters.openvino.model_configs import Qwen3NextOpenVINOConfig
    from transformers import AutoModelForCausalLM

    from tools.targets.optimum_intel.patterns.gated_delta_source import patcher_source

    namespace = dict(vars(upstream))
    exec(patcher_source("OlmoHybridModelPatcher", (MIXER,), "linear_attention", "full_attention", "test"), namespace)
    torch.manual_seed(0)
    config = AutoConfig.for_model("olmo_hybrid", **TINY, layer_types=["linear_attention", "full_attention",
                                                                      "linear_attention", "linear_attention"])
    model = AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(2, 1000, (1, 12))
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
    mixer = model.model.layers[0].linear_attn
    states = []
    for _ in range(config.layer_types.count("linear_attention")):
        states += [torch.zeros(1, 2 * mixer.key_dim + mixer.value_dim, config.linear_conv_kernel_dim),
                   torch.zeros(1, mixer.num_v_heads, mixer.head_k_dim, mixer.head_v_dim)]
    states += [torch.zeros(1, config.num_key_value_heads, 0, config.hidden_size // config.num_attention_heads)] * 2
    export_config = Qwen3NextOpenVINOConfig(config, task="text-generation-with-past")
    with torch.no_grad(), namespace["OlmoHybridModelPatcher"](export_config, model):
        out = model.forward(input_ids=ids[:, :6], attention_mask=torch.ones(1, 6, dtype=torch.long), cache_params=states)
        steps = [out["logits"][:, -1]]
        for t in range(6, 11):
            out = model.forward(input_ids=ids[:, t:t + 1], attention_mask=torch.ones(1, t + 1, dtype=torch.long),
                                cache_params=out["present_key_values"])
            steps.append(out["logits"][:, -1])
    worst = max(float((s - full[:, 5 + k]).abs().max()) for k, s in enumerate(steps))
    assert worst < 1e-5, worst
