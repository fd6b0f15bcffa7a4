"""The MoE state-dict safety check on a hand-written adapter: correct mapping passes, each bug is named."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sandboxes.targets.nemo_automodel.provenance import check_provenance, role, tag_state_dict  # noqa: E402

E, H, I = 4, 6, 3


def _checkpoint():
    """One MoE layer as save_pretrained writes it: router, per-expert gate/up/down, a gated shared expert."""
    g = torch.Generator().manual_seed(0)
    p = "model.layers.0.mlp"
    sd = {f"{p}.gate.weight": torch.randn(E, H, generator=g),
          f"{p}.shared_expert_gate.weight": torch.randn(1, H, generator=g)}
    for proj, shape in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
        sd[f"{p}.shared_expert.{proj}.weight"] = torch.randn(*shape, generator=g)
        for e in range(E):
            sd[f"{p}.experts.{e}.{proj}.weight"] = torch.randn(*shape, generator=g)
    return sd


def _from_hf(sd, order=range(E), router_into_experts=False):
    """A grouped-experts adapter like NeMo's: gate/up fused and transposed, down transposed."""
    p = "model.layers.0.mlp"
    out = {f"{p}.shared_expert_gate.weight": sd[f"{p}.shared_expert_gate.weight"]}
    router = sd[f"{p}.gate.weight"]
    out[f"{p}.experts.gate.weight" if router_into_experts else f"{p}.gate.weight"] = router
    for proj in ("gate_proj", "up_proj", "down_proj"):
        out[f"{p}.shared_experts.{proj}.weight"] = sd[f"{p}.shared_expert.{proj}.weight"]
    out[f"{p}.experts.gate_and_up_projs"] = torch.stack(
        [torch.cat([sd[f"{p}.experts.{e}.gate_proj.weight"], sd[f"{p}.experts.{e}.up_proj.weight"]]).T for e in order])
    out[f"{p}.experts.down_projs"] = torch.stack([sd[f"{p}.experts.{e}.down_proj.weight"].T for e in order])
    return out


def _run(**kw):
    tagged, index = tag_state_dict(_checkpoint(), torch)
    native = _from_hf(tagged, **kw)
    return check_provenance(tagged, index, native, {k: v for k, v in native.items()}, torch, n_experts=E)


def test_roles_are_read_from_checkpoint_names():
    assert role("model.layers.3.mlp.gate.weight") == ("router", 3)
    assert role("model.layers.3.mlp.experts.7.down_proj.weight") == ("expert", 3, 7, "down")
    assert role("model.layers.3.mlp.shared_expert.up_proj.weight") == ("shared", 3, "up")
    assert role("model.layers.3.mlp.shared_expert_gate.weight") == ("shared_gate", 3)


def test_a_correct_grouped_mapping_passes():
    result = _run()
    assert result["status"] == "passed", result["detail"]


def test_two_swapped_experts_are_caught():
    result = _run(order=[1, 0, 2, 3])
    assert result["status"] == "failed" and "routed expert 0 of layer 0" in result["detail"]
    assert "slot 1" in result["detail"]


def test_router_mapped_as_an_expert_is_caught():
    result = _run(router_into_experts=True)
    assert result["status"] == "failed" and "router model.layers.0.mlp.gate.weight mapped into expert tensor" in result["detail"]


def test_a_dropped_expert_or_a_cast_value_is_caught():
    tagged, index = tag_state_dict(_checkpoint(), torch)
    native = _from_hf(tagged)
    native["model.layers.0.mlp.experts.down_projs"] = native["model.layers.0.mlp.experts.down_projs"][:3]
    result = check_provenance(tagged, index, native, native, torch, n_experts=E)
    assert result["status"] == "failed" and "land nowhere" in result["detail"]
    native = _from_hf(tagged)
    native["model.layers.0.mlp.gate.weight"] = native["model.layers.0.mlp.gate.weight"] * 1.0001
    result = check_provenance(tagged, index, native, native, torch, n_experts=E)
    assert result["status"] == "failed" and "values no checkpoint element had" in result["detail"]
