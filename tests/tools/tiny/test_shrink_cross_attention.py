"""The tiny stack keeps one layer of each kind named by an index list: mllama's cross-attention layers."""

from __future__ import annotations

from transformers import AutoConfig

from tools.tiny.shrink import shrink_config


def test_mllama_tiny_keeps_a_cross_attention_layer():
    raw = AutoConfig.for_model("mllama").to_dict()
    text = shrink_config(raw)["text_config"]
    # the default stack names layers 3, 8, ... 38 of 40; the tiny one has 2 layers: the last becomes one
    assert text["num_hidden_layers"] == 2 and text["cross_attention_layers"] == [1]
