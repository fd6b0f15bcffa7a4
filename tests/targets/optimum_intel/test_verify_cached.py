"""The cached-decode check of the sandbox job: step-by-step logits against one full forward."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from sandboxes.targets.optimum_intel import cached
from tools.targets.optimum_intel.target import stage_of


@pytest.fixture(scope="module")
def tiny():
    config = AutoConfig.for_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=128, head_dim=8)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def _ids(length=12):
    return torch.randint(3, 120, (1, length), generator=torch.Generator().manual_seed(1))


def test_a_model_whose_cached_steps_equal_its_full_forward_passes(tiny):
    check = cached.cached_decode(tiny, tiny, _ids(), tol=1e-4)
    assert check["status"] == "passed", check["detail"]
    assert check["metrics"]["steps"] == 6 and check["metrics"]["max_abs_diff"] < 1e-4


def test_a_cache_that_drifts_from_the_first_decode_step_fails(tiny):
    drifting = copy.deepcopy(tiny)

    def off_by_a_little_when_decoding(module, args, output):
        return output + 0.1 if args[0].shape[1] == 1 else output  # only single-token (cached) steps

    drifting.model.embed_tokens.register_forward_hook(off_by_a_little_when_decoding)
    check = cached.cached_decode(tiny, drifting, _ids(), tol=1e-4)
    assert check["status"] == "failed"
    assert check["metrics"]["first_step_over"] == 1  # step 0 comes from the prefill, which is right
    assert check["metrics"]["per_step"][0] < 1e-4 and "first step above it: 1" in check["detail"]



def test_a_default_path_that_departs_from_the_model_is_replaced_by_the_eager_reference_only_if_it_agrees(tiny):
    # glm_moe_dsa's sdpa path drops the all-ones causal mask (its full forward then sees later tokens): a
    # decode that follows the model as written passes against the eager reference, and only against it
    peeking = copy.deepcopy(tiny)
    peeking.lm_head.register_forward_hook(lambda module, args, output: output + 0.5)
    as_written = SimpleNamespace(logits=lambda feeds: tiny(**feeds, use_cache=False).logits)
    check = cached.cached_decode(peeking, tiny, _ids(), tol=1e-4, eager=as_written)
    assert check["status"] == "passed", check["detail"]
    assert check["metrics"]["reference"] == "eager_no_cache" and check["metrics"]["default_max_abs_diff"] > 0.4
    assert "eager, uncached reference" in check["detail"]
    assert cached.cached_decode(peeking, tiny, _ids(), tol=1e-4)["status"] == "failed"
    wrong_too = SimpleNamespace(logits=lambda feeds: peeking(**feeds, use_cache=False).logits)
    check = cached.cached_decode(peeking, tiny, _ids(), tol=1e-4, eager=wrong_too)
    assert check["status"] == "failed" and check["metrics"]["reference"] == "default"

def test_states_are_recognised_from_inputs_or_stateful_variables():
    stateless = SimpleNamespace(input_names={"input_ids": 0, "cache_params.past.conv.0": 1}, request=None)
    assert cached.carries_states(stateless)
    kv_only = SimpleNamespace(input_names={"input_ids": 0, "beam_idx": 1},
                              request=SimpleNamespace(query_state=lambda: [SimpleNamespace(name="past_key_values.0.key")]))
    assert not cached.carries_states(kv_only)
    stateful = SimpleNamespace(input_names={"input_ids": 0},
                               request=SimpleNamespace(query_state=lambda: [SimpleNamespace(name="cache_params.past.ssm.0")]))
    assert cached.carries_states(stateful)



def test_a_per_layer_cache_tensor_besides_keys_and_values_is_a_state_to_decode_through():
    # a sparse-attention indexer's keys ride with the key/value cache; stateful variable ids join the input
    # and output names (as OpenVINO's make_stateful names them)
    def stateful(*names):
        return SimpleNamespace(input_names={"input_ids": 0, "beam_idx": 1},
                               request=SimpleNamespace(query_state=lambda: [SimpleNamespace(name=n) for n in names]))

    kv = ["past_key_values.0.keypresent.0.key", "past_key_values.0.valuepresent.0.value"]
    assert not cached.carries_states(stateful(*kv))
    assert cached.carries_states(stateful(*kv, "past_key_values.0.indexer_keypresent.0.indexer_key"))
    assert cached.carries_states(SimpleNamespace(input_names={"past_key_values.1.indexer_key": 0}, request=None))
    assert not cached.carries_states(SimpleNamespace(input_names={"past_key_values.12.value": 0}, request=None))

def test_position_ids_reach_the_export_only_when_it_takes_them():
    feeds = {"input_ids": 1, "attention_mask": 2, "position_ids": 3}
    assert "position_ids" not in cached.ov_feeds(SimpleNamespace(input_names={"input_ids": 0}), feeds)
    assert cached.ov_feeds(SimpleNamespace(input_names={"input_ids": 0, "position_ids": 1}), feeds) == feeds


def test_the_check_is_a_compare_stage_check():
    assert stage_of("cached_decode") == "compare"


def test_the_f32_gate_overrides_every_precision_the_export_writes_into_the_ir():
    """optimum-intel writes runtime options into a text-generation IR (an f16 KV cache among them): the f32 gate
    must load every such precision as f32, or its cached decoding compares f16 rounding, not the export."""
    from optimum.exporters.openvino.convert import _set_runtime_options

    from sandboxes.targets.optimum_intel import verify

    export_config = SimpleNamespace()
    _set_runtime_options({"model": (None, export_config)}, "text-generation-with-past", "transformers", False)
    precisions = {k for k in export_config.runtime_options if k.endswith("_PRECISION")}
    assert precisions, export_config.runtime_options
    assert {k: verify.F32.get(k) for k in precisions} == {k: "f32" for k in precisions}
