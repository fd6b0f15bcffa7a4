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
from tools.targets.optimum_intel.patterns.ssm_mamba1 import (ATTENTION_LABELS, HYBRID_MAMBA1, MIXER_LABELS,
                                                             layout_problems, mixer_classes, variant)
from tools.targets.optimum_intel.patterns.ssm_mamba1_source import (HEADED_HELPER, HELPER, family_function,
                                                                    family_source, headed_helper_source,
                                                                    helper_source)
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
NAMES = ("mamba_expand", "mamba_d_state", "mamba_d_conv")
TINY_ZAMBA = dict(hidden_size=64, num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1, num_attention_heads=4,
                  num_key_value_heads=4, vocab_size=1024, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2,
                  mamba_dt_rank=4, n_mamba_heads=2, use_mamba_kernels=False,
                  layers_block_type=["mamba", "hybrid", "mamba", "hybrid"])
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
    assert mixer_classes("jamba") == ("JambaMambaMixer",) and variant("jamba").helper == HELPER
    assert mixer_classes("zamba") == ("ZambaMambaMixer",) and variant("zamba").helper == HEADED_HELPER
    # near misses: Mamba-1 without the inner dt/B/C norms (mamba, falcon_mamba), Mamba-2 mixers
    for other in ("mamba", "falcon_mamba", "bamba", "granitemoehybrid"):
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
        ssm_mamba1._matches.cache_clear()
        assert mixer_classes("fake") == (), edit.__name__
    ssm_mamba1._matches.cache_clear()


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


def test_a_layer_with_both_a_mixer_and_attention_is_hybrid():
    config = AutoConfig.for_model("zamba", **TINY_ZAMBA)
    names = NAMES + ("n_mamba_heads",)
    kinds, problems = layout_problems(config, ("ZambaMambaMixer",), names)
    assert kinds == ["mamba", "hybrid", "mamba", "hybrid"] and problems == []
    # the recurrent state's heads read under another name: the family's states would not fit the mixers
    _, problems = layout_problems(config, ("ZambaMambaMixer",), NAMES + ("num_attention_heads",))
    assert any("heads are not" in p for p in problems)


def _family(model_type: str, config, names: tuple[str, ...]):
    expand, d_state, d_conv = names[:3]
    channels = f"int(config.{expand} * config.hidden_size)"
    heads = (f"config.{names[3]}", f"{channels} // config.{names[3]}") if len(names) > 3 else (channels, "1")
    namespace = {}
    exec(family_source(model_type, expand, d_state, d_conv, *heads, MIXER_LABELS, ATTENTION_LABELS), namespace)  # noqa: S102
    return namespace[family_function(model_type)](config)


def test_the_config_copy_gives_the_family_its_cache_layout_and_leaves_the_model_config_alone():
    # jamba computes its layer kinds in properties; its layer_types names "full_attention"
    config = AutoConfig.for_model("jamba", **TINY_JAMBA)
    family = _family("jamba", config, NAMES)
    assert family.layers_block_type == ["mamba", "attention", "mamba", "attention"]  # key/value index of a layer
    assert family.layer_types == ["mamba", "mamba", "attention", "attention"]  # what the generator counts
    assert (family.mamba_n_groups, family.mamba_n_heads, family.mamba_d_head) == (0, 128, 1)
    assert family._ov_mixer_index == {0: 0, 2: 1}
    assert config.layer_types == ["mamba", "full_attention", "mamba", "full_attention"]
    # zamba sets its kinds on itself and aliases layer_types to them; every layer has a mixer
    config = AutoConfig.for_model("zamba", **TINY_ZAMBA)
    family = _family("zamba", config, NAMES + ("n_mamba_heads",))
    assert family.layers_block_type == ["mamba", "attention", "mamba", "attention"]  # key/value index of a layer
    assert family.layer_types == ["mamba"] * 4 + ["attention"] * 2  # what the generator counts
    assert (family.mamba_n_heads, family.mamba_d_head) == (2, 64) and family._ov_mixer_index == {i: i for i in range(4)}
    assert config.layers_block_type == ["mamba", "hybrid", "mamba", "hybrid"] and family.head_dim == 32


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


def _recurrent_form(source, name):
    from optimum.exporters.openvino import model_patcher

    namespace = {"torch": torch, "ov_causal_conv1d": model_patcher.ov_causal_conv1d}
    exec(source(), namespace)  # noqa: S102 - the source the pattern writes upstream, run as written
    return namespace[name], model_patcher.SelectiveSSMRecurrentCell


def _jamba_mixer():
    from transformers.models.jamba.modeling_jamba import JambaMambaMixer

    mixer = JambaMambaMixer(AutoConfig.for_model("jamba", **TINY_JAMBA), layer_idx=0)
    return mixer, (mixer.intermediate_size, 1)


def _zamba_mixer():
    from transformers.models.zamba.modeling_zamba import ZambaMambaMixer

    mixer = ZambaMambaMixer(AutoConfig.for_model("zamba", **TINY_ZAMBA), layer_idx=0)
    return mixer, (mixer.n_mamba_heads, mixer.mamba_head_dim)


@pytest.mark.parametrize("build, source, name", [(_jamba_mixer, helper_source, HELPER),
                                                 (_zamba_mixer, headed_helper_source, HEADED_HELPER)])
def test_the_written_recurrent_form_is_the_mixers_slow_path_full_and_cached(build, source, name):
    forward, cell = _recurrent_form(source, name)
    torch.manual_seed(0)
    mixer, axes = build()
    mixer.eval()
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    mixer.selective_ssm_recurrent_cell = cell()
    x = torch.randn(2, 11, mixer.hidden_size)
    channels, states, kernel = mixer.intermediate_size, mixer.ssm_state_size, mixer.conv_kernel_size

    def zeros():
        return torch.zeros(2, channels, kernel), torch.zeros(2, *axes, states)

    with torch.no_grad():
        reference = mixer.slow_forward(x)
        full, _, _ = forward(mixer, x, *zeros())
        assert torch.allclose(full, reference, atol=1e-5)
        # prefill 6 tokens, then one token at a time through the carried conv and recurrent states
        out, conv, recurrent = forward(mixer, x[:, :6], *zeros())
        steps = [out]
        for t in range(6, 11):
            out, conv, recurrent = forward(mixer, x[:, t:t + 1], conv, recurrent)
            steps.append(out)
        assert torch.allclose(torch.cat(steps, dim=1), reference, atol=1e-5)
        # left padding: the masked positions are zeroed as the model's mask does
        mask = torch.ones(2, 11, dtype=torch.long)
        mask[1, :3] = 0
        padded, _, _ = forward(mixer, x, *zeros(), mask)
        assert torch.allclose(padded, mixer.slow_forward(x, attention_mask=mask), atol=1e-5)
