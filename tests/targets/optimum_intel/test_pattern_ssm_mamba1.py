"""The hybrid Mamba-1 cache pattern: which mixers it recognises, the layout it reads from the model, the
recurrent form it writes (checked numerically against the model's own slow path, full and cached), the
patcher, registration and family lists it writes, and how search offers it."""

from __future__ import annotations

import ast
import copy
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns import ssm_mamba1
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.moe import _modeling
from tools.targets.optimum_intel.patterns.ssm_mamba1 import HYBRID_MAMBA1, layout_problems, mixer_classes
from tools.targets.optimum_intel.patterns.ssm_mamba1_source import HELPER, helper_source
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
NAMES = ("mamba_expand", "mamba_d_state", "mamba_d_conv")
TINY_JAMBA = dict(hidden_size=64, num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, vocab_size=1024, mamba_d_state=8, mamba_d_conv=4,
                  mamba_expand=2, mamba_dt_rank=4, num_experts=4, num_experts_per_tok=2, expert_layer_period=2,
                  expert_layer_offset=1, use_mamba_kernels=False)
# what upstream optimum-intel defines for GraniteMoeHybrid, as the miniature workspace needs it (parsed only)
FAMILY_CONFIG = '''

@register_in_tasks_manager("granitemoehybrid", *["text-generation", "text-generation-with-past"], library_name="transformers")
class GraniteMoeHybridOpenVINOConfig(MambaOpenVINOConfig):
    _MODEL_PATCHER = GraniteMoeHybridModelPatcher
    MIN_TRANSFORMERS_VERSION = "5.5.0"
'''
FAMILY_PATCHER = '''

def ov_causal_conv1d(conv_state, input_embeds, weight, bias):
    """Upstream: the causal convolution over a carried state."""


class GraniteMoeHybridModelPatcher(OVDecoderModelPatcher):
    def __enter__(self):
        super().__enter__()


class SelectiveSSMRecurrentCell(torch.nn.Module):
    """Upstream: the Mamba-2 recurrence OpenVINO converts to a loop."""
'''


def workspace(tmp_path: Path, patcher: str = FAMILY_PATCHER) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    configs = root / "optimum/exporters/openvino/model_configs.py"
    configs.write_text(configs.read_text().replace("    MixtralModelPatcher,\n",
                                                   "    GraniteMoeHybridModelPatcher,\n    MixtralModelPatcher,\n")
                       + FAMILY_CONFIG)
    target = root / "optimum/exporters/openvino/model_patcher.py"
    target.write_text(target.read_text() + patcher)
    utils = root / "optimum/exporters/openvino/utils.py"
    utils.write_text(utils.read_text() + '\nSSM_MODELS = [\n    "mamba",\n    "granitemoehybrid",\n    "qwen3_next",\n]\n')
    return root


@pytest.fixture
def ws(tmp_path) -> Path:
    return workspace(tmp_path)


def jamba(ws: Path, base: str = "GraniteMoeHybridOpenVINOConfig", **overrides) -> PatternContext:
    raw = AutoConfig.for_model("jamba", **{**TINY_JAMBA, **overrides}).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, base)


def test_the_mixer_is_recognised_by_its_slow_path_not_its_name():
    assert mixer_classes("jamba") == ("JambaMambaMixer",)
    # near misses: Mamba-1 without the inner dt/B/C norms, the multi-head Zamba variant, Mamba-2 mixers
    for other in ("mamba", "falcon_mamba", "zamba", "bamba", "granitemoehybrid"):
        assert mixer_classes(other) == (), other


def test_a_mixer_computing_anything_else_is_refused(monkeypatch):
    tree = _modeling("jamba")

    def variant(edit):
        changed = copy.deepcopy(tree)
        forward = next(f for c in changed.body if isinstance(c, ast.ClassDef) and c.name == "JambaMambaMixer"
                       for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "slow_forward")
        edit(forward)
        return changed

    def drop_dt_norm(forward):  # the scan's time step without its inner RMS norm
        forward.body = [s for s in forward.body if "dt_layernorm" not in ast.unparse(s)]

    def relu_time_step(forward):  # another discretization of the time step
        for node in ast.walk(forward):
            if isinstance(node, ast.Attribute) and node.attr == "softplus":
                node.attr = "relu"

    for edit in (drop_dt_norm, relu_time_step):
        fake = variant(edit)
        monkeypatch.setattr(ssm_mamba1, "_modeling", lambda t, fake=fake: fake if t == "fake" else _modeling(t))
        ssm_mamba1.mixer_classes.cache_clear()
        assert mixer_classes("fake") == (), edit.__name__
    ssm_mamba1.mixer_classes.cache_clear()


def test_layout_is_read_from_the_instantiated_model():
    config = AutoConfig.for_model("jamba", **TINY_JAMBA)
    kinds, problems = layout_problems(config, ("JambaMambaMixer",), NAMES)
    assert kinds == ["mamba", "attention", "mamba", "attention"] and problems == []
    # a mixer the model does not have: the config's layer labels no longer describe the built layers
    kinds, problems = layout_problems(config, ("SomeOtherMixer",), NAMES)
    assert kinds == ["other", "attention", "other", "attention"]
    assert any("does not name the layers the model builds" in p for p in problems)
    # sizes read under other config names than the mixers read them from: the family's states would not fit
    _, problems = layout_problems(config, ("JambaMambaMixer",), ("mamba_expand", "mamba_dt_rank", "mamba_d_conv"))
    assert problems and all("ssm_state_size" in p or "A_log" in p for p in problems)


def test_applies_only_with_the_family_base_and_its_helpers(ws, tmp_path):
    assert "hybrid_mamba1_cache" in dict(applicable(jamba(ws)))
    assert HYBRID_MAMBA1.precondition(jamba(ws, base="LlamaOpenVINOConfig")) is None
    without_cell = workspace(tmp_path / "nocell", FAMILY_PATCHER.split("\n\nclass SelectiveSSMRecurrentCell")[0])
    assert HYBRID_MAMBA1.precondition(jamba(without_cell)) is None  # no loop cell upstream: nothing to reuse


def test_search_offers_the_family_base_first_with_the_experts_route(ws):
    ctx = jamba(ws)
    first = search(ctx.analysis, ws, read_registry(ws), 3)[0]
    assert first.base == "granitemoehybrid" and first.params["base_class"] == ctx.base_class
    assert {"hybrid_mamba1_cache", "moe_batched_mm"} <= set(first.patterns)


def test_edit_writes_one_patcher_with_the_experts_route_and_the_family_lists(ws):
    ctx = jamba(ws)
    edit = combined_edit(ctx, ["moe_batched_mm", "hybrid_mamba1_cache"])
    assert edit.class_attrs["_MODEL_PATCHER"] == "JambaModelPatcher" and edit.joins == ["granitemoehybrid"]
    assert len(edit.patchers) == 1  # the experts pattern defers to this pattern's patcher
    spec = PatchSpec(model_type="jamba", base_class=ctx.base_class, min_transformers_version=edit.min_transformers,
                     display_name="Jamba", tiny_config={"model_type": "jamba"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins)
    write_patch(ws, spec)
    patcher = (ws / "optimum/exporters/openvino/model_patcher.py").read_text()
    tree = ast.parse(patcher)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "JambaModelPatcher")
    assert [b.id for b in cls.bases] == ["GraniteMoeHybridModelPatcher"]
    assert 'MIXER_CLASSES = ("JambaMambaMixer",)' in patcher and "register_ov_batched_mm(self)" in patcher
    assert {HELPER, "jamba_mamba1_family_config", "JambaMamba1NormalizedConfig"} <= {
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    configs = (ws / "optimum/exporters/openvino/model_configs.py").read_text()
    assert "class JambaOpenVINOConfig(GraniteMoeHybridOpenVINOConfig):" in configs
    assert "NORMALIZED_CONFIG_CLASS = JambaMamba1NormalizedConfig" in configs
    assert '"granitemoehybrid",\n    "jamba",\n' in (ws / "optimum/exporters/openvino/utils.py").read_text()


def test_without_experts_the_patcher_does_not_route_them(ws):
    edit = combined_edit(jamba(ws), ["hybrid_mamba1_cache"])
    assert "register_ov_batched_mm" not in edit.patchers[0].source


def _recurrent_form():
    from optimum.exporters.openvino import model_patcher

    namespace = {"torch": torch, "ov_causal_conv1d": model_patcher.ov_causal_conv1d}
    exec(helper_source(), namespace)  # noqa: S102 - the source the pattern writes upstream, run as written
    return namespace[HELPER], model_patcher.SelectiveSSMRecurrentCell


def test_the_written_recurrent_form_is_the_mixers_slow_path_full_and_cached():
    from transformers.models.jamba.modeling_jamba import JambaMambaMixer

    forward, cell = _recurrent_form()
    torch.manual_seed(0)
    mixer = JambaMambaMixer(AutoConfig.for_model("jamba", **TINY_JAMBA), layer_idx=0).eval()
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    mixer.selective_ssm_recurrent_cell = cell()
    x = torch.randn(2, 11, TINY_JAMBA["hidden_size"])
    channels, states, kernel = mixer.intermediate_size, mixer.ssm_state_size, mixer.conv_kernel_size
    with torch.no_grad():
        reference = mixer.slow_forward(x)
        full, _, _ = forward(mixer, x, torch.zeros(2, channels, kernel), torch.zeros(2, channels, 1, states))
        assert torch.allclose(full, reference, atol=1e-5)
        # prefill 6 tokens, then one token at a time through the carried conv and recurrent states
        out, conv, recurrent = forward(mixer, x[:, :6], torch.zeros(2, channels, kernel),
                                       torch.zeros(2, channels, 1, states))
        steps = [out]
        for t in range(6, 11):
            out, conv, recurrent = forward(mixer, x[:, t:t + 1], conv, recurrent)
            steps.append(out)
        assert torch.allclose(torch.cat(steps, dim=1), reference, atol=1e-5)
        # left padding: the masked positions are zeroed as the model's mask does
        mask = torch.ones(2, 11, dtype=torch.long)
        mask[1, :3] = 0
        padded, _, _ = forward(mixer, x, torch.zeros(2, channels, kernel), torch.zeros(2, channels, 1, states), mask)
        assert torch.allclose(padded, mixer.slow_forward(x, attention_mask=mask), atol=1e-5)
