"""The hybrid Mamba2 cache pattern for mixers with written variant steps and for decoder layers holding a mixer
and an attention each (FalconH1): the steps recognised and put back in the recurrent form, the family config
copy counting both kinds per layer, the cache pairs keyed by the modules, and the near misses refused."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import torch
from transformers import AutoConfig

from tests.targets.optimum_intel.test_pattern_ssm_hybrid import ws  # noqa: F401 - the miniature workspace
from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.ssm_family import prefill_shape, width_name
from tools.targets.optimum_intel.patterns.ssm_hybrid import (HYBRID_MAMBA2, config_names, layout_problems,
                                                             mixer_classes, mixer_variants, width)
from tools.targets.optimum_intel.patterns.ssm_source import family_source, layer_cache_source
from tools.targets.optimum_intel.patterns.ssm_variant import Variant, strip, variant_helper

TINY_FALCON_H1 = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1024, mamba_d_ssm=96, mamba_n_heads=4, mamba_d_head=24,
                      mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2)
FORWARD = '''
def torch_forward(self, x, cache_params=None, attention_mask=None):
    x = apply_mask(x, attention_mask)
    p = self.in_proj(x)
    gate, h = p.split([self.a, self.b], dim=-1)
    y = self.scan(h)
    s = self.norm(y, gate)
    return self.out_proj(s)
'''
STEPS = {"    p = self.in_proj(x)\n": "    x = x * self.scale_in\n    p = self.in_proj(x)\n    p = p * self.mup\n",
         "    s = self.norm(y, gate)\n": ("    if self.use_norm:\n        s = self.norm(y, gate)\n"
                                      "    else:\n        s = y * torch.nn.functional.silu(gate)\n")}
# the family's recurrent form, as the miniature workspace gives it (its own names for the same values)
HELPER = '''
def granite_moe_hybrid_mamba_mixer_forward(self, hidden_states, cache_params=None, conv_state=None,
                                           recurrent_state=None, attention_mask=None):
    """Upstream: the recurrent form of GraniteMoeHybrid's Mamba2 mixer."""
    projected_states = self.in_proj(hidden_states)
    gate, rest = projected_states.split([self.intermediate_size, self.conv_dim], dim=-1)
    y = self.selective_ssm_recurrent_cell(rest)
    scan_output = self.norm(y, gate)
    return self.out_proj(scan_output), conv_state, recurrent_state
'''


def _func(source: str) -> ast.FunctionDef:
    return ast.parse(textwrap.dedent(source)).body[0]


def _with_steps(source: str, steps=STEPS) -> str:
    for old, new in steps.items():
        source = source.replace(old, new)
    return source


def test_pointwise_steps_are_recognised_and_taken_out():
    model = _func(_with_steps(FORWARD))
    assert prefill_shape(model) != prefill_shape(_func(FORWARD))  # as written: not the family's
    assert prefill_shape(model, variants=True) == prefill_shape(_func(FORWARD))
    assert strip(model.body)[1] == (Variant("before", "in_proj", "scale_in"), Variant("after", "in_proj", "mup"),
                                    Variant("optional", "norm", "use_norm", "y * torch.nn.functional.silu(gate)",
                                            ("y", "gate")))


def test_other_differences_are_no_variant_steps():
    family = prefill_shape(_func(FORWARD))
    near_misses = [
        # a constant scale, a scale by a value that is no module attribute, a scale away from any module call
        {"    p = self.in_proj(x)\n": "    x = x * 2.0\n    p = self.in_proj(x)\n"},
        {"    p = self.in_proj(x)\n": "    x = x * attention_mask\n    p = self.in_proj(x)\n"},
        {"    y = self.scan(h)\n": "    y = self.scan(h)\n    gate = gate * self.g\n"},
        # a fallback reading something but the call's arguments, or calling a module
        {"    s = self.norm(y, gate)\n": "    if self.f:\n        s = self.norm(y, gate)\n    else:\n        s = y * h\n"},
        {"    s = self.norm(y, gate)\n": ("    if self.f:\n        s = self.norm(y, gate)\n"
                                        "    else:\n        s = self.act(y) * gate\n")},
    ]
    for steps in near_misses:
        assert prefill_shape(_func(_with_steps(FORWARD, steps)), variants=True) != family, steps


def test_the_recurrent_form_gets_the_steps_at_the_same_places():
    helper = _func(HELPER)
    model = _func(_with_steps(FORWARD))
    source = variant_helper(helper, textwrap.dedent(HELPER), "m_mamba_mixer_forward", strip(model.body)[1])
    written = _func(source)
    assert written.name == "m_mamba_mixer_forward"
    lines = [ast.unparse(s) for s in written.body[1:4]]
    assert lines == ["hidden_states = hidden_states * self.scale_in", "projected_states = self.in_proj(hidden_states)",
                     "projected_states = projected_states * self.mup"]
    assert ast.unparse(written.body[-2]) == ("if self.use_norm:\n    scan_output = self.norm(y, gate)\nelse:\n"
                                             "    scan_output = y * torch.nn.functional.silu(gate)")
    # a step around a module the recurrent form does not call has no place: nothing is written
    assert variant_helper(helper, textwrap.dedent(HELPER), "m", (Variant("before", "gate_proj", "s"),)) is None


def test_falcon_h1_is_the_family_with_steps_a_width_and_hybrid_layers():
    assert mixer_classes("falcon_h1") == ("FalconH1Mixer",)
    steps, problems = mixer_variants("falcon_h1")
    assert problems == () and [(v.place, v.module, v.attr) for v in steps] == [
        ("before", "in_proj", "ssm_in_multiplier"), ("after", "in_proj", "mup_vector"),
        ("optional", "norm", "mamba_rms_norm")]
    assert mixer_variants("bamba") == ((), ()) and mixer_variants("mamba2") == ((), ())
    assert width("falcon_h1") == "mamba_d_ssm" and width("bamba") is None
    cls = ast.parse("class M:\n    def __init__(self, config):\n        self.intermediate_size = (\n"
                    "            int(config.e * self.hidden_size) if config.w is None else config.other)\n").body[0]
    assert width_name(cls) is None  # an outright size under another key than the one tested is no width
    config = AutoConfig.for_model("falcon_h1", **TINY_FALCON_H1)
    names, _ = config_names("falcon_h1")
    assert layout_problems(config, ("FalconH1Mixer",), names, "mamba_d_ssm") == (["hybrid", "hybrid"], [])
    # without the width the family's generator would size the conv state from mamba_expand * hidden_size
    kinds, problems = layout_problems(config, ("FalconH1Mixer",), names)
    assert any("conv_dim 128 != 160" in p for p in problems)


def test_the_family_config_counts_a_mixer_and_an_attention_per_hybrid_layer():
    config = AutoConfig.for_model("falcon_h1", **TINY_FALCON_H1)
    names, _ = config_names("falcon_h1")
    scope = {}
    exec(family_source("falcon_h1", names, True, "mamba_d_ssm", hybrid=True), scope)  # noqa: S102 - the patch's source
    family = scope["falcon_h1_family_config"](config)
    assert family.layer_types == ["mamba", "mamba", "attention", "attention"] == family.layers_block_type
    assert int(family.mamba_expand * family.hidden_size) == 96
    assert config.layer_types == ["hybrid", "hybrid"] and config.mamba_expand == 2  # the model's is left
    assert isinstance(family, type(config)) and scope["falcon_h1_family_config"](family) is family


def test_each_mixer_and_attention_has_its_own_cache_pair():
    scope = {"torch": torch}
    exec(layer_cache_source("m"), scope)  # noqa: S102 - the source the patch writes

    class Patcher:
        def model_orig_forward(self, input_ids, attention_mask, past_key_values, use_cache):
            cache = past_key_values
            for layer in (0, 1) if cache is not None else ():  # a layer's mixer and its attention write their own pairs
                idx = cache.mamba_mapping[layer]
                cache.conv_states[idx] = cache.conv_states[idx] + 10 * (layer + 1)
                cache.recurrent_states[idx] = cache.recurrent_states[idx] + 20 * (layer + 1)
                cache.update(torch.full((1, 1, 1, 1), 30.0 + layer), torch.full((1, 1, 1, 1), 40.0 + layer), layer)
            return type("Out", (), {"logits": input_ids})()

    forward = scope["m_layer_cache_forward"](Patcher(), [0, 1], [0, 1])
    past = [torch.zeros(1) for _ in range(4)] + [torch.zeros(1, 1, 0, 1) for _ in range(4)]
    present = forward(torch.ones(1, 1), torch.ones(1, 1), past)["present_key_values"]
    assert [float(t.flatten()[-1]) for t in present] == [10, 20, 20, 40, 30, 40, 31, 41]
    assert "present_key_values" not in forward(torch.ones(1, 1))  # no cache: no pairs


def falcon_h1(ws: Path) -> PatternContext:
    raw = AutoConfig.for_model("falcon_h1", **TINY_FALCON_H1).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, "GraniteMoeHybridOpenVINOConfig")


def test_falcon_h1_edit_writes_the_variant_form_and_the_layer_cache(ws):  # noqa: F811
    patcher = ws / "optimum/exporters/openvino/model_patcher.py"
    stub = patcher.read_text()
    start = stub.index("def granite_moe_hybrid_mamba_mixer_forward")
    end = stub.index("\n\nclass GraniteMoeHybridModelPatcher")
    # the stub has no in_proj for the steps to sit around: no recurrent form can be written, so no pattern
    assert "hybrid_mamba2_cache" not in dict(applicable(falcon_h1(ws)))
    patcher.write_text(stub[:start] + HELPER.lstrip() + stub[end:])
    ctx = falcon_h1(ws)
    assert "hybrid_mamba2_cache" in dict(applicable(ctx))
    edit = combined_edit(ctx, ["hybrid_mamba2_cache"])
    spec = PatchSpec(model_type="falcon_h1", base_class=ctx.base_class, min_transformers_version="5.5.0",
                     display_name="FalconH1", tiny_config={"model_type": "falcon_h1"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins,
                     code_blocks=edit.code_blocks)
    write_patch(ws, spec)
    text = patcher.read_text()
    defined = {n.name for n in ast.parse(text).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"falcon_h1_mamba_mixer_forward", "FalconH1ModelPatcher", "falcon_h1_family_config",
            "falcon_h1_layer_cache_forward", "FalconH1FamilyNormalizedConfig"} <= defined
    assert "hidden_states = hidden_states * self.ssm_in_multiplier" in text
    assert "out, conv_state, recurrent_state = falcon_h1_mamba_mixer_forward(" in text
    assert "falcon_h1_layer_cache_forward(self, mixer_layers, attention_layers)" in text
    assert not edit.code_blocks  # the model's config names an intermediate size: the runtime cache reads it


def test_bamba_is_written_as_before(ws):  # noqa: F811
    from tests.targets.optimum_intel.test_pattern_ssm_hybrid import bamba

    edit = HYBRID_MAMBA2.edit(bamba(ws))
    source = edit.patchers[0].source
    assert "granite_moe_hybrid_mamba_mixer_forward(" in source and "layer_cache" not in source
    assert "def " not in source.split("class BambaModelPatcher")[0]  # no recurrent form of its own
