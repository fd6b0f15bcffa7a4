"""Parity on a MoE model counts only when its inputs reached every expert (sandboxes/targets/optimum_intel)."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

from sandboxes.targets.optimum_intel import experts
from sandboxes.targets.optimum_intel.verify import _expert_coverage

CFG = dict(vocab_size=200, hidden_size=32, intermediate_size=32, moe_intermediate_size=16,
           shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           num_experts=4, num_experts_per_tok=2)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Qwen2MoeForCausalLM(Qwen2MoeConfig(**CFG)).eval()


def _never_route_to(model, expert: int) -> None:
    """A router that never picks `expert` (its score is always the lowest): the case the check must catch."""
    for name, module in model.named_modules():
        if name.endswith("mlp.gate"):
            original = module.forward

            def forward(hidden, _orig=original):
                out = _orig(hidden)
                parts = list(out) if isinstance(out, tuple) else [out]
                for i, p in enumerate(parts):
                    if torch.is_tensor(p) and not p.is_floating_point():
                        parts[i] = torch.where(p == expert, torch.zeros_like(p), p)
                    elif torch.is_tensor(p) and p.shape[-1] == CFG["num_experts"]:
                        parts[i] = p.clone().index_fill_(-1, torch.tensor([expert]), -1e9)
                return tuple(parts) if isinstance(out, tuple) else parts[0]
            module.forward = forward


class SameModel:
    """Stands in for the OpenVINO model: the same module, so only coverage can fail."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **feeds):
        with torch.no_grad():
            return self.model(**feeds)


def _feeds():
    return experts.random_batch(CFG["vocab_size"], seed=99, length=3)


def test_moe_shape_reads_the_config(model):
    assert experts.moe_shape(model.config) == (4, 2)


def test_every_expert_reached_passes(model):
    check = _expert_coverage(model, SameModel(model), None, _feeds(), (4, 2), 1e-4)
    assert check["status"] == "passed", check["detail"]
    assert check["metrics"]["layers"] == 2 and check["metrics"]["min_used"] == 4


def test_an_idle_expert_fails_the_check_and_is_named(model):
    _never_route_to(model, 3)
    check = _expert_coverage(model, SameModel(model), None, _feeds(), (4, 2), 1e-4)
    assert check["status"] == "failed"
    assert check["metrics"]["extra_batches"] == 8  # it tried more inputs before giving up
    assert all(idle == [3] for idle in check["metrics"]["idle"].values()) and len(check["metrics"]["idle"]) == 2


def test_a_config_that_names_experts_without_using_them_is_not_checked():
    from transformers import DogeConfig, DogeForCausalLM

    cfg = DogeConfig(vocab_size=200, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, num_experts=4, is_moe=False)
    dense = DogeForCausalLM(cfg).eval()
    assert experts.moe_shape(dense.config) == (4, 2) or experts.moe_shape(dense.config)
    assert not experts.has_experts(dense)


def test_a_moe_model_has_experts(model):
    assert experts.has_experts(model)
