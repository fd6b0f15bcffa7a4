"""moe_identity_experts_dense: fused experts with identity slots (LongCat-Flash's shape) run densely for the
export, on the miniature optimum-intel workspace."""

from __future__ import annotations

import ast

import pytest
from transformers import AutoConfig

from tests.targets.optimum_intel.test_patterns_moe_shapes import (CONFIGS, PATCHER, assert_additive, class_source,
                                                                  ctx, snapshot, top_level, write, ws)  # noqa: F401
from tools.targets.optimum_intel.patterns.base import registry
from tools.targets.optimum_intel.patterns.moe_identity import (IDENTITY_EXPERTS, forward_name, forward_source,
                                                               identity_experts, identity_in, patcher_source)

LONGCAT = "LongcatFlashExperts"


def longcat_source() -> str:
    return class_source("longcat_flash", LONGCAT)


def test_identity_slots_are_recognised_by_structure_not_by_name():
    (found,) = identity_experts("longcat_flash")
    assert (found.name, found.total, found.real, found.activation, found.act_on) == \
        (LONGCAT, "total_experts", "num_routed_experts", "self.act_fn", 0)
    for other in ("olmoe", "mixtral", "deepseek_v3", "aria_text", "jetmoe", "gpt_oss", "llama"):
        assert identity_experts(other) == (), other
    src = longcat_source()
    renamed = src.replace(LONGCAT, "MyExperts").replace("num_routed_experts", "n_real") \
        .replace("total_experts", "n_slots").replace("identity_expert", "skip")
    (mine,) = identity_in(ast.parse(renamed))
    assert (mine.name, mine.total, mine.real) == ("MyExperts", "n_slots", "n_real")


@pytest.mark.parametrize("old, new", [
    ("self.identity_expert = nn.Identity()", "self.identity_expert = nn.Linear(1, 1)"),  # not a pass-through
    ("expert_idx >= self.num_routed_experts", "expert_idx < self.num_routed_experts"),  # no slots from a bound
    ("num_classes=self.total_experts", "num_classes=top_k_index.max() + 1"),  # slot count not an attribute
    ("self.act_fn(gate) * up", "self.act_fn(gate) + up"),  # no gating product
    ("F.linear(current_hidden_states, self.down_proj[expert_idx])",
     "current_hidden_states @ self.down_proj[expert_idx]"),  # another layout
    ("def forward(self, hidden_states, top_k_index, top_k_weights):",
     "def forward(self, hidden_states, router_logits):"),  # not the routed-experts signature
])
def test_other_shapes_are_refused(old, new):
    src = longcat_source()
    changed = src.replace(old, new)
    assert changed != src, old
    assert identity_in(ast.parse(changed)) == ()


def test_precondition_applies_to_longcat_and_refuses_others(ws):
    reason = IDENTITY_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "longcat_flash"))
    assert reason and LONGCAT in reason and "num_routed_experts" in reason
    assert IDENTITY_EXPERTS.name in registry()
    for other in ("olmoe", "aria_text", "llama"):
        assert IDENTITY_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", other)) is None, other
    patcher = ws / PATCHER
    patcher.write_text(patcher.read_text().replace("def register_ov_batched_mm(", "def older("))
    assert IDENTITY_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "longcat_flash")) is None


def test_edit_adds_the_dense_forward_and_a_patcher_installing_it(ws):
    before = snapshot(ws)
    edit, result = write(ws, ctx(ws, "LlamaOpenVINOConfig", "longcat_flash"), IDENTITY_EXPERTS)
    after = snapshot(ws)
    assert_additive(before, after)
    assert set(result.changed) >= {CONFIGS, PATCHER}
    names = top_level(after[PATCHER])
    forward = forward_name("longcat_flash")
    assert names[names.index("register_ov_batched_mm") + 1] == forward
    assert names[names.index("OVDecoderModelPatcher") + 1] == "LongcatFlashModelPatcher"
    assert f'"{LONGCAT}": {forward}' in after[PATCHER]
    assert "    _MODEL_PATCHER = LongcatFlashModelPatcher\n" in after[CONFIGS]
    again = snapshot(ws)
    write(ws, ctx(ws, "LlamaOpenVINOConfig", "longcat_flash"), IDENTITY_EXPERTS)
    assert snapshot(ws) == again  # idempotent


def test_search_tries_the_pattern_first_and_keeps_a_plain_fallback(ws):
    from tools.targets.optimum_intel.search import search
    from tools.targets.optimum_intel.target import read_registry

    found = search(ctx(ws, "LlamaOpenVINOConfig", "longcat_flash").analysis, ws, read_registry(ws), limit=20)
    with_it = [i for i, c in enumerate(found) if IDENTITY_EXPERTS.name in c.patterns]
    without = [i for i, c in enumerate(found) if IDENTITY_EXPERTS.name not in c.patterns]
    assert with_it and without and max(with_it) < min(without)


def _experts(torch, real: int, zero: int):
    from transformers.models.longcat_flash.modeling_longcat_flash import LongcatFlashExperts

    cfg = AutoConfig.for_model("longcat_flash", hidden_size=32, expert_ffn_hidden_size=16, n_routed_experts=real,
                               zero_expert_num=zero, moe_topk=3)
    torch.manual_seed(0)
    experts = LongcatFlashExperts(cfg)
    for p in experts.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return experts.requires_grad_(False)  # tracing the function form keeps the weights as constants


@pytest.mark.parametrize("real, zero", [(4, 2), (4, 0), (6, 3)])
def test_dense_forward_computes_what_longcat_computes(real, zero):
    torch = pytest.importorskip("torch")
    experts = _experts(torch, real, zero)
    total = real + zero
    hidden = torch.randn(13, 32)
    index = torch.stack([torch.randperm(total)[:3] for _ in range(13)])
    index[0] = torch.tensor([total - 1, 0, 1])  # an identity slot (or the last real expert) is surely chosen
    weights = torch.rand(13, 3)
    (shape,) = identity_experts("longcat_flash")
    space = {"torch": torch}
    exec(forward_source("f", shape), space)
    with torch.no_grad():
        want = experts(hidden, index, weights)
        got = space["f"](experts, hidden, index, weights)
    assert got.shape == want.shape and torch.allclose(want, got, atol=1e-5)


def test_dense_forward_traces_every_real_expert_whatever_the_input_reached():
    """The reason for the pattern: the module's own forward, traced on an input reaching one expert, is wrong
    on another input; the dense one is right on both."""
    torch = pytest.importorskip("torch")
    experts = _experts(torch, 4, 2)
    (shape,) = identity_experts("longcat_flash")
    space = {"torch": torch}
    exec(forward_source("f", shape), space)

    def dense(h, i, w):
        return space["f"](experts, h, i, w)

    hidden, weights = torch.randn(5, 32), torch.rand(5, 3)
    reach_one = torch.tensor([[0, 4, 5]] * 5)
    reach_all = torch.tensor([[1, 2, 3]] * 5)
    with torch.no_grad():
        looped = torch.jit.trace(experts, (hidden, reach_one, weights), check_trace=False)
        traced = torch.jit.trace(dense, (hidden, reach_one, weights), check_trace=False)
        want = experts(hidden, reach_all, weights)
        assert not torch.allclose(looped(hidden, reach_all, weights), want, atol=1e-3)
        assert torch.allclose(traced(hidden, reach_all, weights), want, atol=1e-5)


def test_patcher_source_names_the_class_and_forward():
    (shape,) = identity_experts("longcat_flash")
    src = patcher_source("P", "Base", (shape,), "fwd")
    ast.parse(src)
    assert f'"{LONGCAT}": fwd' in src and "class P(Base):" in src
