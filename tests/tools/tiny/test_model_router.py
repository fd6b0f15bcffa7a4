"""A router the family initialises to zeros gets random weights in the tiny model (tools/tiny_model.py)."""

from __future__ import annotations

import torch

from tools.hf.config import analyze, load_config
from tools.tiny.model import _break_router_ties, build_tiny


def test_ernie_moe_router_is_not_all_zero(tmp_path):
    tiny = build_tiny(load_config("ernie4_5_moe").raw, tmp_path)
    from safetensors.torch import load_file

    weights = load_file(str(tiny.path / "model.safetensors"))
    routers = [k for k in weights if k.endswith("mlp.gate.weight")]
    assert routers, sorted(weights)[:20]
    for name in routers:
        assert weights[name].abs().sum() > 0, f"{name} is all zeros: every expert would tie"


def test_only_zero_expert_shaped_weights_are_drawn():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.router = torch.nn.Parameter(torch.zeros(4, 8))  # experts x hidden, left to the checkpoint
            self.proj = torch.nn.Parameter(torch.zeros(8, 8))  # not expert-shaped
            self.trained = torch.nn.Parameter(torch.ones(4, 8))  # expert-shaped but already set

    analysis = analyze({"model_type": "x", "num_experts": 4, "num_experts_per_tok": 2, "hidden_size": 8})
    block = Block()
    assert _break_router_ties(block, analysis, 0.02) == ["router"]
    assert block.router.abs().sum() > 0 and not block.proj.any() and bool((block.trained == 1).all())


def test_dense_model_is_left_alone():
    block = torch.nn.Linear(4, 4)
    torch.nn.init.zeros_(block.weight)
    assert _break_router_ties(block, analyze({"model_type": "x", "hidden_size": 4}), 0.02) == []
    assert not block.weight.any()
