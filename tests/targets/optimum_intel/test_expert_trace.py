"""An export that traced a loop over the experts its dummy input reached fails the expert check
(sandboxes/targets/optimum_intel/expert_trace.py)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from sandboxes.targets.optimum_intel import expert_trace
from sandboxes.targets.optimum_intel.verify import _expert_coverage
from tests.targets.optimum_intel.test_verify_experts import LONGCAT, SameModel, _feeds


@pytest.fixture
def longcat():
    from transformers import LongcatFlashConfig, LongcatFlashForCausalLM

    torch.manual_seed(0)
    return LongcatFlashForCausalLM(LongcatFlashConfig(**LONGCAT)).eval()


def _trace_first_moe(model):
    """torch.jit.trace of the first MoE block, as OpenVINO's converter traces the model; the warnings it raised."""
    block = model.model.layers[0].mlp
    with expert_trace.recorded() as caught, torch.no_grad():
        torch.jit.trace(block, torch.randn(1, 5, LONGCAT["hidden_size"]), check_trace=False)
    return caught


def _dense(self, hidden_states, top_k_index, top_k_weights):
    """Every real expert on every token, weighted; the zero-computation slots pass the input through."""
    weights = torch.zeros(hidden_states.shape[0], self.total_experts).scatter_add(1, top_k_index, top_k_weights)
    out = weights[:, self.num_routed_experts:].sum(-1, keepdim=True) * hidden_states
    for e in range(self.num_routed_experts):
        gate, up = F.linear(hidden_states, self.gate_up_proj[e]).chunk(2, dim=-1)
        out = out + weights[:, e:e + 1] * F.linear(self.act_fn(gate) * up, self.down_proj[e])
    return out


def test_the_loop_over_reached_experts_is_found(longcat):
    loops = expert_trace.traced_loops(longcat, _trace_first_moe(longcat))
    assert loops and all(loop.startswith("LongcatFlashExperts.forward line ") for loop in loops)


def test_a_dense_experts_forward_traces_no_loop(longcat):
    for layer in longcat.model.layers:
        layer.mlp.experts.forward = _dense.__get__(layer.mlp.experts)
    assert expert_trace.traced_loops(longcat, _trace_first_moe(longcat)) == []


def test_warnings_outside_the_expert_layer_do_not_count(longcat):
    with expert_trace.recorded() as caught:
        warnings.warn("Iterating over a tensor might cause the trace to be incorrect.", torch.jit.TracerWarning)
    assert len(caught) == 1 and expert_trace.traced_loops(longcat, caught) == []


def test_a_traced_loop_fails_the_check_even_with_every_expert_reached(longcat):
    loops = ["LongcatFlashExperts.forward line 207"]
    check = _expert_coverage(longcat, SameModel(longcat), None, _feeds(), (4, 2), 1e-4, loops)
    assert check["status"] == "failed" and "traced a Python loop" in check["detail"]
    assert check["metrics"]["min_used"] == 4 and check["metrics"]["traced_loops"] == loops
    passed = _expert_coverage(longcat, SameModel(longcat), None, _feeds(), (4, 2), 1e-4, [])
    assert passed["status"] == "passed", passed["detail"]
