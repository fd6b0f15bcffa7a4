"""Every window a config sets is shrunk below the verification's long sequence, so it really applies."""

from __future__ import annotations

from tools.hf.config import analyze
from tools.tiny.shrink import shrink_config

MAX_SEQ = 64


def test_doge_keep_window_is_shrunk_so_its_dynamic_mask_drops_keys():
    # doge keeps the keep_window_size keys its dynamic mask ranks highest: at 2048 a tiny model's
    # sequences never reach it, and an export that ignores the top-k would pass every check
    raw = {"model_type": "doge", "architectures": ["DogeForCausalLM"], "vocab_size": 32768, "hidden_size": 1024,
           "intermediate_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 8, "num_key_value_heads": 4,
           "max_position_embeddings": 2048, "keep_window_size": 2048, "sliding_window": None}
    tiny = shrink_config(raw, analyze(raw), max_seq=MAX_SEQ)
    assert tiny["keep_window_size"] < MAX_SEQ // 2
