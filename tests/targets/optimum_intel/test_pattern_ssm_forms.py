"""The second mixer form of the hybrid Mamba2 cache pattern (Zamba2's, NemotronH's): the recurrent form it
writes computes what the model's own mixer computes without a cache, where GraniteMoeHybrid's does not;
the config names, layer layout and experts routing NemotronH needs; near misses refused."""

from __future__ import annotations

import ast
import math
import textwrap

import pytest
import torch
from transformers import AutoConfig

from tests.targets.optimum_intel.test_pattern_ssm_hybrid import ws  # noqa: F401 - the miniature workspace
from tools.hf.config import analyze
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.moe_ungated import UNGATED_EXPERTS, ungated
from tools.targets.optimum_intel.patterns.ssm_family import config_names, family_names, own_value, prefill_shape
from tools.targets.optimum_intel.patterns.ssm_forms import GRANITE, ZAMBA2, recurrent_source
from tools.targets.optimum_intel.patterns.ssm_hybrid import (HYBRID_MAMBA2, _cache_taking, _modeling, _reference_shape,
                                                             config_names as model_names, layout_problems)

TINY_NEMOTRON_H = dict(hidden_size=64, layers_block_type=["mamba", "moe", "attention"], num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, intermediate_size=128, vocab_size=1024,
                       mamba_num_heads=4, mamba_head_dim=32, ssm_state_size=16, n_groups=1, expand=2,
                       conv_kernel=4, chunk_size=8, n_routed_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=64, moe_shared_expert_intermediate_size=64)


def _recurrent(source: str, name: str):
    from optimum.exporters.openvino import model_patcher

    scope = dict(vars(model_patcher))
    exec(compile(source, "<recurrent form>", "exec"), scope)  # noqa: S102 - the pattern's own generated source
    return scope[name]


def _mixer(seed: int = 0):
    from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMamba2Mixer

    torch.manual_seed(seed)
    mixer = NemotronHMamba2Mixer(AutoConfig.for_model("nemotron_h", **TINY_NEMOTRON_H), layer_idx=0).eval()
    with torch.no_grad():
        for p in mixer.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        # dt well below time_step_min for half the heads: where the two forms' clamps differ
        mixer.dt_bias.copy_(torch.tensor([-9.0, 0.5, -9.0, 0.5]))
    from optimum.exporters.openvino.model_patcher import SelectiveSSMRecurrentCell

    mixer.selective_ssm_recurrent_cell = SelectiveSSMRecurrentCell()
    return mixer


@pytest.mark.parametrize("batch,pad", [(1, 0), (1, 3), (2, 5)])
def test_the_written_recurrent_form_computes_nemotron_h_mixer(batch, pad):
    # one chunk of the model's chunked scan: beyond one, transformers 5.5.4's slow path of Zamba2/NemotronH sums
    # the inter-chunk states over the wrong axis (transformers#47246); the next test compares there with the
    # model's own decode path, the recurrence its CUDA kernels compute too
    mixer, seq = _mixer(), 8
    x = torch.randn(batch, seq, 64)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, :pad] = 0  # left padding of the last row
    with torch.no_grad():
        want = mixer.torch_forward(x, None, mask if pad else None)
        fn = recurrent_source("nemotron_mixer", ZAMBA2)
        got, _, _ = _recurrent(fn, "nemotron_mixer")(mixer, x, None, None, None, mask)
        upstream = getattr(__import__("optimum.exporters.openvino.model_patcher", fromlist=["x"]), GRANITE.helper)
        granite, _, _ = upstream(mixer, x, None, None, None, mask)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    # GraniteMoeHybrid's recurrent form clamps dt to time_step_limit and masks only batches of several rows
    assert not torch.allclose(granite, want, atol=1e-4)


def test_beyond_one_chunk_the_recurrent_form_is_the_models_decode_path():
    from transformers import DynamicCache

    mixer, seq = _mixer(2), 21
    x = torch.randn(2, seq, 64)
    fn = _recurrent(recurrent_source("nemotron_mixer", ZAMBA2), "nemotron_mixer")
    mamba_only = AutoConfig.for_model("nemotron_h", **{**TINY_NEMOTRON_H, "layers_block_type": ["mamba"]})
    cache = DynamicCache(config=mamba_only)
    with torch.no_grad():
        got, _, _ = fn(mixer, x, None, None, None, None)
        # one token through the prefill path, then the model's single-token recurrent path for every other
        steps = [mixer.torch_forward(x[:, t:t + 1], cache, None) for t in range(seq)]
    assert torch.allclose(got, torch.cat(steps, dim=1), atol=1e-4)


def test_the_recurrent_form_carries_its_state_from_prefill_to_decode():
    mixer, x = _mixer(1), torch.randn(2, 13, 64)
    fn = _recurrent(recurrent_source("nemotron_mixer", ZAMBA2), "nemotron_mixer")
    with torch.no_grad():
        full, _, _ = fn(mixer, x, None, None, None, None)
        first, conv, ssm = fn(mixer, x[:, :12], None, None, None, None)
        last, _, _ = fn(mixer, x[:, 12:], None, conv, ssm, None)
    assert torch.allclose(torch.cat([first, last], dim=1), full, atol=1e-5)


def _torch_forward(model_type: str, cls: str) -> ast.FunctionDef:
    node = next(n for n in _modeling(model_type).body if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "torch_forward")


def _altered(func: ast.FunctionDef, old: str, new: str) -> ast.FunctionDef:
    source = ast.unparse(func)
    assert old in source
    head, _, tail = source.rpartition(old)  # the last one: the cache-free path's, after the decode branch
    return ast.parse(textwrap.dedent(head + new + tail)).body[0]


def test_nemotron_h_mixer_is_zamba2s_form_and_near_misses_are_no_form():
    nemotron = _torch_forward("nemotron_h", "NemotronHMamba2Mixer")
    assert prefill_shape(nemotron) == _reference_shape(ZAMBA2) != _reference_shape(GRANITE)
    for old, new in [("torch.clamp(dt, self.time_step_min)", "torch.clamp(dt, self.time_step_min, self.time_step_max)"),
                     ("(input_states * attention_mask[:, :, None])", "(input_states * attention_mask[:, -1:, None])"),
                     ("y = y + D_residual", "y = y - D_residual")]:
        near = prefill_shape(_altered(nemotron, old, new))
        assert near not in (_reference_shape(ZAMBA2), _reference_shape(GRANITE)), old


def test_an_intermediate_size_read_as_a_product_is_the_familys_expand_factor():
    names, problems = model_names("nemotron_h")
    assert problems == () and dict(names)["mamba_expand"] == "mamba_num_heads*mamba_head_dim"
    config = AutoConfig.for_model("nemotron_h", **{**TINY_NEMOTRON_H, "hidden_size": 96, "mamba_num_heads": 7})
    factor = own_value(config, "mamba_num_heads*mamba_head_dim")
    assert int(factor * config.hidden_size) == 7 * 32  # exact, though 224 / 96 is no binary fraction
    # a product is accepted for the intermediate size only: the family reads every other size as one key
    init = ("class M:\n    def __init__(self, config):\n        self.num_heads = config.a * config.b\n"
            "        self.intermediate_size = config.c * config.d\n")
    assert config_names(ast.parse(init).body[0]) == {"num_heads": "a*b", "intermediate_size": "c*d"}
    reference = next(n for n in _modeling("granitemoehybrid").body
                     if isinstance(n, ast.ClassDef) and n.name == GRANITE.mixer)
    nemotron = next(n for n in _modeling("nemotron_h").body
                    if isinstance(n, ast.ClassDef) and n.name == "NemotronHMamba2Mixer")
    assert family_names(reference, nemotron)[1] == []
    near = ast.parse(ast.unparse(nemotron).replace("self.num_heads = config.mamba_num_heads",
                                                   "self.num_heads = config.mamba_num_heads * config.n_groups")).body[0]
    assert any("reads num_heads as a product" in p for p in family_names(reference, near)[1])


def test_layers_of_neither_kind_fit_unless_labelled_as_one_or_taking_a_cache():
    config = AutoConfig.for_model("nemotron_h", **TINY_NEMOTRON_H)
    names = model_names("nemotron_h")[0]
    kinds, problems = layout_problems(config, ("NemotronHMamba2Mixer",), names)
    assert kinds == ["ssm", "other", "attention"] and problems == []
    # the MoE layer labelled as a Mamba layer: the family would count a state the model does not have
    config.layers_block_type = ["mamba", "moe", "attention"]
    _, problems = layout_problems(config, ("SomeOtherMixer",), names)
    assert any("does not name the layers" in p for p in problems)


def test_a_layer_of_neither_kind_holding_a_cache_taking_module_is_flagged():
    class Stateful(torch.nn.Module):
        def forward(self, hidden_states, cache_params=None):
            return hidden_states

    class Layer(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, hidden_states, past_key_values=None):  # the layer itself passes the cache on
            return self.inner(hidden_states)

    assert _cache_taking(Layer(torch.nn.Linear(2, 2))) == []
    assert _cache_taking(Layer(Stateful())) == ["Stateful"]


def _nemotron(ws) -> PatternContext:  # noqa: F811 - the fixture
    raw = AutoConfig.for_model("nemotron_h", **TINY_NEMOTRON_H).to_dict()
    raw["time_step_limit"] = [0.0, 1e9]  # json-safe; the layout reads sizes only
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, "GraniteMoeHybridOpenVINOConfig")


def test_nemotron_h_gets_the_written_recurrent_form_and_its_experts_routed(ws):  # noqa: F811
    ctx = _nemotron(ws)
    names = [n for n, _ in applicable(ctx)]
    assert HYBRID_MAMBA2.name in names and UNGATED_EXPERTS.name in names
    edit = combined_edit(ctx, [UNGATED_EXPERTS.name, HYBRID_MAMBA2.name])
    helper = "_nemotron_h_mamba_mixer_forward"
    blocks = {b.name: b for b in edit.patchers}
    assert blocks[helper].after == GRANITE.helper and "torch.clamp(dt, self.time_step_min)" in blocks[helper].source
    patcher = blocks[edit.class_attrs["_MODEL_PATCHER"]].source
    assert f"= {helper}(" in patcher and 'set_experts_implementation("batched_mm")' in patcher
    assert "Fraction(\n        config.mamba_num_heads * config.mamba_head_dim, config.hidden_size\n" in "".join(
        b.source for b in edit.patchers)
    # alone, the experts pattern writes a patcher of its own over the base's
    alone = combined_edit(_nemotron(ws), [UNGATED_EXPERTS.name])
    assert "set_experts_implementation" in alone.patchers[0].source


def test_only_experts_without_a_gate_are_routed_so():
    assert ungated("nemotron_h") == ("NemotronHExperts",)
    assert ungated("mixtral") == () and ungated("llama") == ()


def test_variant_steps_are_not_taken_out_of_a_form_whose_recurrent_form_is_written(monkeypatch):
    # FalconH1's pointwise steps are put back into optimum-intel's own recurrent form (patterns/ssm_variant.py);
    # the written Zamba2 form has no place for them, so a Zamba2-form mixer with such a step is no known form
    import copy

    from tools.targets.optimum_intel.patterns import ssm_hybrid

    tree = copy.deepcopy(_modeling("nemotron_h"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "NemotronHMamba2Mixer")
    method = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "torch_forward")
    old = "        projected_states = self.in_proj(input_states)\n    d_mlp"
    source = ast.unparse(method)
    assert old in source
    stepped = ast.parse(source.replace(old, old.replace(
        "\n    d_mlp", "\n        projected_states = projected_states * self.mup_vector\n    d_mlp"))).body[0]
    cls.body[cls.body.index(method)] = stepped
    assert prefill_shape(stepped) != _reference_shape(ZAMBA2)
    assert prefill_shape(stepped, variants=True) == _reference_shape(ZAMBA2)  # a variant of Zamba2's form...
    real = ssm_hybrid._modeling
    monkeypatch.setattr(ssm_hybrid, "_modeling", lambda t: tree if t == "nemotron_h_stepped" else real(t))
    assert ssm_hybrid.mixer_forms("nemotron_h_stepped") == ()  # ...is not recognised as a mixer of it
    assert ssm_hybrid.mixer_forms("nemotron_h") == (("NemotronHMamba2Mixer", ZAMBA2),)
