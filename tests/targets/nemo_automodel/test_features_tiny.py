"""Classification, structure evidence from transformers' source, and the tiny config derived from a real one."""

from __future__ import annotations

import json

from tests.targets.nemo_automodel.helpers import QWEN2_MOE, QWEN3_DENSE, QWEN3_MOE
from tools.targets.nemo_automodel.features import classify, differences, structure
from tools.targets.nemo_automodel.tiny import derive_tiny


def test_classify_dense_moe_vlm():
    assert classify(json.loads(QWEN3_DENSE.read_text())) == "dense"
    assert classify(json.loads(QWEN2_MOE.read_text())) == "moe"
    vlm = {"architectures": ["Qwen3VLForConditionalGeneration"], "vision_config": {}, "text_config": {"num_experts": 0}}
    assert classify(vlm) == "vlm"
    assert classify({"architectures": ["XForCausalLM"], "text_config": {"num_local_experts": 8}}) == "moe"


def test_qwen2_moe_differs_from_qwen3_moe_with_evidence_lines():
    diffs = differences(structure("qwen2_moe"), structure("qwen3_moe"))
    assert diffs["qk_norm"][:2] == (True, False)
    assert diffs["shared_expert"][1] == "shared_expert" and "shared_expert_intermediate_size" in diffs["shared_expert"][2]
    assert diffs["shared_expert_gate"][1] == "sigmoid"
    assert diffs["q_proj_bias"][1] == "qkv_bias" and "bias=config.qkv_bias" in diffs["q_proj_bias"][2]
    assert diffs["o_proj_bias"][1] == "False"
    assert "router" not in diffs  # both softmax, then top-k


def test_tiny_keeps_every_field_and_shrinks_sizes():
    real = json.loads(QWEN2_MOE.read_text())
    tiny = derive_tiny(real)
    assert tiny["shared_expert_intermediate_size"] == 48 and tiny["moe_intermediate_size"] == 32
    assert tiny["num_experts"] == 4 and tiny["num_experts_per_tok"] == 2 and tiny["num_hidden_layers"] == 2
    assert tiny["num_key_value_heads"] == tiny["num_attention_heads"]  # MHA stays MHA
    assert tiny["norm_topk_prob"] is False and tiny["rms_norm_eps"] == 1e-6 and tiny["rope_theta"] == 1e6
    assert "_name_or_path" not in tiny and "architectures" not in tiny
    gqa = derive_tiny(json.loads(QWEN3_MOE.read_text()))
    assert gqa["num_key_value_heads"] < gqa["num_attention_heads"] and gqa["head_dim"] == 16
    layered = derive_tiny({"model_type": "x", "layer_types": ["a", "b", "c"], "mlp_only_layers": [0, 5]})
    assert layered["layer_types"] == ["a", "b"] and layered["mlp_only_layers"] == [0]
