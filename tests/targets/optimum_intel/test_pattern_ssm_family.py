"""The hybrid Mamba2 cache pattern beyond GraniteMoeHybrid's spelling: mixers compared on their cache-free
path, config names read from the mixers' __init__, and the family config copy written for Mamba2."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from transformers import AutoConfig

from tests.targets.optimum_intel.test_pattern_ssm_hybrid import ws  # noqa: F401 - the miniature workspace
from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.ssm_family import config_names, prefill_shape
from tools.targets.optimum_intel.patterns.ssm_forms import GRANITE, ZAMBA2
from tools.targets.optimum_intel.patterns.ssm_hybrid import (HYBRID_MAMBA2, config_names as model_names,
                                                             layout_problems, mixer_classes, mixer_form, mixer_forms)
from tools.targets.optimum_intel.patterns.ssm_source import family_source

TINY_MAMBA2 = dict(num_hidden_layers=2, hidden_size=64, num_heads=4, head_dim=32, state_size=16, n_groups=1,
                   expand=2, conv_kernel=4, vocab_size=1000)
MAMBA_CACHE = '''

class OVCacheWithMambaStates:
    def __init__(self, config, batch_size=None, dtype=None, device=None):
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.intermediate_size = config.intermediate_size
'''
FORWARD = '''
def torch_forward(self, input_states, cache_params=None, attention_mask=None):
    batch_size, seq_len, _ = input_states.shape
    projected = self.in_proj(input_states)
    use_cache = cache_params is not None and cache_params.has_previous_state(self.layer_idx)
    if use_cache:
        projected = cache_params.update(projected, self.layer_idx)
    else:
        if cache_params is not None:
            cache_params.store(projected, self.layer_idx)
        projected = self.act(projected)
    dt = torch.clamp(projected, self.time_step_limit[0], self.time_step_limit[1])
    if dt is not None and cache_params is not None:
        cache_params.update_recurrent_state(dt, self.layer_idx)
    return self.out_proj(dt)
'''


def _shape(source: str) -> str:
    return prefill_shape(ast.parse(textwrap.dedent(source)).body[0])


def test_the_cache_free_path_is_compared_up_to_names():
    ref = _shape(FORWARD)
    # other local names, a name reused for a new value, a cache branch written otherwise: the same computation
    renamed = (FORWARD.replace("input_states", "hidden_states").replace("projected", "hidden_states")
               .replace("cache_params.update(hidden_states, self.layer_idx)", "cache_params.other(layer_idx=1)"))
    assert _shape(renamed) == ref
    # a different clamp, a statement more or a swapped operand on the cache-free path: not the same
    assert _shape(FORWARD.replace("self.time_step_limit[0], self.time_step_limit[1]", "self.time_step_min")) != ref
    assert _shape(FORWARD.replace("    return self.out_proj(dt)", "    dt = dt * self.mup\n    return self.out_proj(dt)")) != ref
    assert _shape(FORWARD.replace("self.act(projected)", "self.act(input_states)")) != ref


def test_a_discarded_leading_split_is_the_family_split():
    family = "def f(self, x):\n    p = self.in_proj(x)\n    g, h, dt = p.split([self.a, self.b, self.c], dim=-1)\n    return g\n"
    leading = ("def f(self, x):\n    p = self.in_proj(x)\n    d_mlp = (p.shape[-1] - self.a) // 2\n"
               "    _, _, g, h, dt = p.split([d_mlp, d_mlp, self.a, self.b, self.c], dim=-1)\n    return g\n")
    assert _shape(leading) == _shape(family)
    kept = leading.replace("_, _, g", "u, _, g")  # a part that is used is not the family's split
    assert _shape(kept) != _shape(family)


def test_mamba2_mixer_is_recognised_and_its_names_read_from_its_init():
    assert mixer_classes("mamba2") == ("Mamba2Mixer",)
    assert mixer_classes("bamba") == ("BambaMixer",)
    assert mixer_form("mamba2") is GRANITE and mixer_form("bamba") is GRANITE
    # NemotronH masks and clamps dt otherwise: Zamba2's form, not GraniteMoeHybrid's
    assert mixer_forms("nemotron_h") == (("NemotronHMamba2Mixer", ZAMBA2),)
    # FalconH1 scales its input and projection: GraniteMoeHybrid's form with pointwise variant steps
    # (tests/targets/optimum_intel/test_pattern_ssm_variant.py)
    assert mixer_forms("falcon_h1") == (("FalconH1Mixer", GRANITE),)
    names, problems = model_names("mamba2")
    assert problems == () and dict(names) == {"mamba_n_heads": "num_heads", "mamba_d_head": "head_dim",
                                              "mamba_d_state": "state_size", "mamba_d_conv": "conv_kernel",
                                              "mamba_n_groups": "n_groups", "mamba_expand": "expand"}
    cls = ast.parse("class M:\n    def __init__(self, config):\n        self.num_heads = config.h\n"
                    "        self.intermediate_size = int(config.e * self.hidden_size)\n        self.n_groups = 2\n").body[0]
    assert config_names(cls) == {"num_heads": "h", "intermediate_size": "e"}  # a constant is no config name


def test_mamba2_layout_is_all_mamba_under_its_own_names():
    config = AutoConfig.for_model("mamba2", **TINY_MAMBA2)
    names, _ = model_names("mamba2")
    assert layout_problems(config, ("Mamba2Mixer",), names) == (["ssm", "ssm"], [])
    # read under the family's names, the sizes are not there: refused
    kinds, problems = layout_problems(config, ("Mamba2Mixer",))
    assert problems and "lacks a size" in problems[0]


def test_the_family_config_is_a_copy_under_both_names():
    config = AutoConfig.for_model("mamba2", **TINY_MAMBA2)
    names, _ = model_names("mamba2")
    scope = {}
    exec(family_source("mamba2", names, has_attention=False), scope)  # noqa: S102 - the source the patch writes
    family = scope["mamba2_family_config"](config)
    assert (family.mamba_d_state, family.mamba_n_groups, family.mamba_d_conv, family.mamba_expand) == (16, 1, 4, 2)
    assert family.layers_block_type == ["mamba", "mamba"] == list(family.layer_types)
    assert family.num_key_value_heads == 4  # read by the generator for attention layers the model does not have
    assert not hasattr(config, "mamba_d_state") and not hasattr(config, "layers_block_type")  # the model's is left
    assert scope["mamba2_family_config"](family) is family


def mamba2(ws: Path) -> PatternContext:
    raw = AutoConfig.for_model("mamba2", **TINY_MAMBA2).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, "GraniteMoeHybridOpenVINOConfig")


def test_mamba2_edit_writes_the_family_config_and_the_runtime_cache_size(ws):  # noqa: F811
    decoder = ws / "optimum/intel/openvino/modeling_decoder.py"
    decoder.parent.mkdir(parents=True, exist_ok=True)
    decoder.write_text("import torch\n" + MAMBA_CACHE)
    ctx = mamba2(ws)
    found = dict(applicable(ctx))
    assert "hybrid_mamba2_cache" in found
    # the family copy carries num_attention_heads: a mapping onto the model's config would be overridden
    assert "normalized_config_mapping" not in found
    edit = combined_edit(ctx, ["hybrid_mamba2_cache"])
    assert edit.class_attrs["NORMALIZED_CONFIG_CLASS"] == "Mamba2FamilyNormalizedConfig"
    spec = PatchSpec(model_type="mamba2", base_class=ctx.base_class, min_transformers_version="5.5.0",
                     display_name="Mamba2", tiny_config={"model_type": "mamba2"}, expected_sdpa=None,
                     class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins,
                     code_blocks=edit.code_blocks)
    write_patch(ws, spec)
    patcher = (ws / "optimum/exporters/openvino/model_patcher.py").read_text()
    defined = {n.name for n in ast.parse(patcher).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"Mamba2ModelPatcher", "mamba2_family_config", "Mamba2FamilyNormalizedConfig"} <= defined
    assert 'kwargs[cache_name] = kwargs.pop("past_key_values")' in patcher
    configs = (ws / "optimum/exporters/openvino/model_configs.py").read_text()
    assert "NORMALIZED_CONFIG_CLASS = Mamba2FamilyNormalizedConfig" in configs
    assert "config.intermediate_size = int(config.expand * config.hidden_size)" in decoder.read_text()


def test_bamba_keeps_the_family_spelling(ws):  # noqa: F811
    raw = AutoConfig.for_model("bamba", hidden_size=64, num_hidden_layers=3, attn_layer_indices=[1],
                               num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                               vocab_size=1024, mamba_n_heads=4, mamba_d_head=32, mamba_d_state=16).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    edit = HYBRID_MAMBA2.edit(PatternContext(analysis, ws, "GraniteMoeHybridOpenVINOConfig"))
    assert "NORMALIZED_CONFIG_CLASS" not in edit.class_attrs and not edit.code_blocks
    assert "family_config" not in edit.patchers[0].source
