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


# LongCat-Flash: a router (mlp.router, a `classifier` linear inside) that scores 4 real experts plus 2
# zero-computation ("identity") slots and returns (weights, indices) with indices up to 5.
LONGCAT = dict(vocab_size=200, hidden_size=32, ffn_hidden_size=32, expert_ffn_hidden_size=16, num_layers=2,
               num_attention_heads=4, num_key_value_heads=4, q_lora_rank=16, kv_lora_rank=16, qk_nope_head_dim=8,
               qk_rope_head_dim=8, v_head_dim=8, head_dim=8, n_routed_experts=4, zero_expert_num=2, moe_topk=2)


@pytest.fixture
def longcat():
    from transformers import LongcatFlashConfig, LongcatFlashForCausalLM

    torch.manual_seed(0)
    return LongcatFlashForCausalLM(LongcatFlashConfig(**LONGCAT)).eval()


def _longcat_routes(model, remap: dict[int, int]) -> None:
    """Rewrite the indices LongCat's routers return (e.g. send real expert 3 to zero slot 4 instead)."""
    for name, module in model.named_modules():
        if name.endswith("mlp.router"):
            original = module.forward

            def forward(hidden, _orig=original):
                weights, idx = _orig(hidden)
                for src, dst in remap.items():
                    idx = torch.where(idx == src, torch.full_like(idx, dst), idx)
                return weights, idx
            module.forward = forward


def test_longcat_router_with_zero_computation_slots_is_found(longcat):
    assert experts.moe_shape(longcat.config) == (4, 2) and experts.has_experts(longcat)
    check = _expert_coverage(longcat, SameModel(longcat), None, _feeds(), (4, 2), 1e-4)
    assert check["status"] == "passed", check["detail"]
    # num_layers=2 decoder layers, each with its own MoE block: both routers counted, all 4 real experts each
    assert check["metrics"]["layers"] == 2 and check["metrics"]["min_used"] == 4
    assert check["metrics"]["zero_slot_picks"] > 0  # the identity slots were routed to, and not counted as experts


def test_longcat_real_expert_left_idle_fails_even_when_zero_slots_are_used(longcat):
    _longcat_routes(longcat, {3: 4})  # tokens meant for real expert 3 go to a zero-computation slot
    check = _expert_coverage(longcat, SameModel(longcat), None, _feeds(), (4, 2), 1e-4)
    assert check["status"] == "failed"
    assert len(check["metrics"]["idle"]) == 2 and all(idle == [3] for idle in check["metrics"]["idle"].values())


def test_router_width_reads_the_routing_linear_not_a_transposed_weight():
    linear = torch.nn.Module()
    linear.classifier = torch.nn.Linear(32, 6, bias=False)
    assert experts.router_width(linear, 4) == 6
    transposed = torch.nn.Module()
    transposed.weight = torch.nn.Parameter(torch.zeros(32, 4))  # (hidden, experts)
    assert experts.router_width(transposed, 4) == 4


def test_a_wide_projection_named_like_a_gate_is_not_a_router():
    """A module named `*_gate` whose weight is wider than the expert count (a gated projection, not a router):
    its float output must not be read as routing over its width (it would mark experts as reached)."""
    block = torch.nn.Module()
    block.up_gate = torch.nn.Linear(8, 16, bias=False)
    cov = experts.Coverage(block, 4, 2)
    block.up_gate(torch.randn(5, 8))
    cov.close()
    assert cov.used == {}
    idx = torch.tensor([[0, 5], [1, 3]])  # chosen indices may reach into the zero-computation slots
    assert experts._selected((torch.rand(2, 2), idx), 4, 2, width=6).tolist() == [0, 5, 1, 3]


def test_granite_parallel_experts_are_checked():
    """GraniteMoe keeps its experts in `input_linear`/`output_linear` (*ParallelExperts): no module is named
    `experts`, and the check used to be skipped for the whole family."""
    from transformers import GraniteMoeSharedConfig, GraniteMoeSharedForCausalLM

    torch.manual_seed(0)
    cfg = GraniteMoeSharedConfig(vocab_size=200, hidden_size=32, intermediate_size=32, shared_intermediate_size=16,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 num_local_experts=4, num_experts_per_tok=2)
    granite = GraniteMoeSharedForCausalLM(cfg).eval()
    assert experts.has_experts(granite) and experts.moe_shape(granite.config) == (4, 2)
    check = _expert_coverage(granite, SameModel(granite), None, _feeds(), (4, 2), 1e-4)
    assert check["status"] == "passed", check["detail"]
    assert check["metrics"]["layers"] == 2 and check["metrics"]["min_used"] == 4
