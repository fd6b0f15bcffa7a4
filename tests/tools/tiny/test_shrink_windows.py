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


def test_dsa_indexer_topk_is_shrunk_and_keeps_enough_heads_to_rank_keys():
    # glm_moe_dsa's indexer keeps its index_topk best-scored keys: at 2048 no tiny sequence reaches it, and
    # an export that attends to every key would pass; 2 index heads make exact score ties common
    raw = {"model_type": "glm_moe_dsa", "architectures": ["GlmMoeDsaForCausalLM"], "vocab_size": 154880,
           "hidden_size": 6144, "num_hidden_layers": 78, "num_attention_heads": 64, "num_key_value_heads": 64,
           "q_lora_rank": 2048, "kv_lora_rank": 512, "qk_nope_head_dim": 192, "qk_rope_head_dim": 64,
           "v_head_dim": 256, "n_routed_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 2048,
           "index_topk": 2048, "index_head_dim": 128, "index_n_heads": 32, "max_position_embeddings": 202752}
    tiny = shrink_config(raw, analyze(raw), max_seq=MAX_SEQ)
    assert tiny["index_topk"] < 48  # the verification's long sequence
    assert tiny["index_n_heads"] >= 16
