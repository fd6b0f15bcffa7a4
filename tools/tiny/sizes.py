"""Size keys and per-family fix-ups for tiny configs (the spellings; tiny_shrink applies the rules).

Families name the same width a dozen ways and transformers' default configs leave a few values unset
that real checkpoints always set; both are collected here so the shrinking rules stay readable.
"""

from __future__ import annotations

import copy

from tools.hf import facts as pat

HIDDEN, HEADS, INTER, EXPERT_INTER, VOCAB, MAX_POS, ORIG_POS = 64, 4, 128, 64, 1024, 512, 128

LAYER_KEYS = pat.LAYER_COUNT_KEYS + ("num_layers_per_block",)
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim", "emb_dim", "hidden_size_global",
               "word_embed_proj_dim", "embedding_size", "hidden_size_per_layer_input_dim")
HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads", "decoder_attention_heads",
             "encoder_attention_heads")
KV_KEYS = ("num_key_value_heads", "n_head_kv", "num_kv_heads", "multi_query_group_num", "num_global_key_value_heads",
           "num_key_value_groups_for_kv")
INTER_KEYS = ("intermediate_size", "ffn_dim", "feed_forward_size", "n_inner", "d_ff", "decoder_ffn_dim",
              "encoder_ffn_dim", "ffn_hidden_size", "intermediate_size_mlp", "dense_intermediate_size",
              "inner_hidden_size")
EXPERT_INTER_KEYS = ("moe_intermediate_size", "expert_intermediate_size", "shared_expert_intermediate_size",
                     "moe_shared_expert_intermediate_size", "shared_intermediate_size", "routed_expert_hidden_size",
                     "moe_latent_size", "expert_ffn_hidden_size")
VOCAB_KEYS = ("vocab_size", "padded_vocab_size", "vocab_size_per_layer_input")
POS_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx",
            "max_target_positions", "max_source_positions", "initial_context_length")
EXPERT_KEYS = ("n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts")
TOPK_KEYS = ("num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k_experts", "moe_topk",
             "num_selected_experts", "moe_k")
SHARED_KEYS = ("n_shared_experts", "num_shared_experts")
MLA_SIZES = {"q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
             "v_head_dim": 16, "o_lora_rank": 32, "index_head_dim": 16,
             # a DSA indexer sums ReLU'd per-head scores: with 2 heads a quarter of them are exactly 0, and
             # top-k ties at the cut are broken differently by each runtime (the released models have 32)
             "index_n_heads": 16}
SKIP_NESTED = ("vision_config", "audio_config", "quantization_config", "rope_scaling", "rope_parameters",
               "linear_attn_config", "generation_config", "sparse_attention_config")
MTP_KEYS = ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules", "num_mtp_layers")
DROP_KEYS = ("quantization_config", "_name_or_path", "torch_dtype", "dtype", "_commit_hash", "auto_map",
             "id2label", "label2id")


def set_present(d: dict, keys: tuple[str, ...], fn) -> None:
    """Apply fn(old) to every present key; None and 0 usually mean 'derived' or 'absent', so they stay."""
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            d[k] = fn(v)


def int_of(d: dict, *keys: str) -> int | None:
    return pat.first_int(d, *keys)


def shrink_linear_and_ssm(t: dict, orig: dict) -> None:
    """Linear-attention and SSM widths; the spellings come from qwen3_next/kimi, mamba, zamba and lfm2."""
    set_present(t, ("linear_num_key_heads", "linear_num_value_heads"), lambda v: 2 if v < 4 else 4)
    set_present(t, ("linear_key_head_dim", "linear_value_head_dim", "ssm_head_dim"), lambda v: 16)
    set_present(t, ("ssm_state_size", "state_size", "mamba_d_state", "d_state"), lambda v: 16)
    set_present(t, ("time_step_rank", "mamba_dt_rank", "adapter_rank"), lambda v: 8)
    set_present(t, ("n_groups", "mamba_n_groups", "mamba_ngroups"), lambda v: 1)
    set_present(t, ("chunk_size", "mamba_chunk_size"), lambda v: min(v, 32))
    hidden0 = int_of(orig, *HIDDEN_KEYS)  # zamba attends over [hidden, embeddings]: twice as wide
    set_present(t, ("attention_hidden_size",), lambda v: 2 * HIDDEN if hidden0 and v == 2 * hidden0 else HIDDEN)
    if isinstance(t.get("attention_hidden_size"), int):
        set_present(t, ("attention_head_dim",), lambda v: t["attention_hidden_size"] // HEADS)
    set_present(t, ("num_query_groups",), lambda v: HEADS)
    set_present(t, ("embedding_dim",), lambda v: HIDDEN)
    set_present(t, ("laurel_rank",), lambda v: 8)
    set_present(t, ("hidden_size_per_layer_input",), lambda v: 16)
    set_present(t, ("num_blocks",), lambda v: int_of(t, *pat.LAYER_COUNT_KEYS) or 2)
    set_present(t, ("max_inference_chunksize",), lambda v: min(v, 64))
    # mamba2-style mixers check heads * head_dim == expand * hidden
    expand = int_of(t, "mamba_expand", "expand")
    if not expand:
        return
    inner = expand * (int_of(t, *HIDDEN_KEYS) or HIDDEN)
    pairs = [("mamba_n_heads", "mamba_d_head"), ("mamba_num_heads", "mamba_head_dim"),
             ("n_mamba_heads", "mamba_headdim")]
    if str(t.get("model_type", "")).startswith("mamba2"):
        pairs.append(("num_heads", "head_dim"))
    for heads_key, dim_key in pairs:
        if isinstance(t.get(heads_key), int):
            t[heads_key] = min(t[heads_key], HEADS)
            if dim_key in t:
                t[dim_key] = inner // t[heads_key]
    if isinstance(t.get("mamba_d_ssm"), int):
        t["mamba_d_ssm"] = inner


def family_fixups(out: dict) -> None:
    """Gaps in transformers' default configs that real checkpoints always fill."""
    attn = out.get("attn_config")
    if out.get("model_type") == "dbrx" and isinstance(attn, dict):
        attn.setdefault("rope_theta", 10000.0)  # DbrxAttentionConfig has no default but the model reads it
        if attn.get("clip_qkv") is None:
            attn["clip_qkv"] = 8.0  # the model clamps with it unconditionally
        if isinstance(out.get("ffn_config"), dict):  # transformers 5.5 sizes the router's input by it
            out["ffn_config"]["ffn_hidden_size"] = out.get("d_model", HIDDEN)
    if str(out.get("model_type", "")).startswith("lfm2") and out.get("layer_types", []) is None:
        out["layer_types"] = ["conv", "full_attention"]
    for d in (out, *[v for v in out.values() if isinstance(v, dict)]):
        if d.get("use_mamba_kernels"):
            d["use_mamba_kernels"] = False  # CUDA-only kernels; the tiny model runs on CPU
    if "is_decoder" in out:
        out["is_decoder"] = True  # causal-LM heads of encoder families insist on it
    if out.get("model_type") == "reformer":  # axial position embeddings factor max_len and hidden
        out["axial_pos_shape"] = [16, out["max_position_embeddings"] // 16]
        out["axial_pos_embds_dim"] = [HIDDEN // 4, HIDDEN - HIDDEN // 4]
        out["local_attn_chunk_length"] = out["lsh_attn_chunk_length"] = 16
    if isinstance(out.get("layers_block_type"), list) and "hybrid_layer_ids" in out:  # zamba2 keeps both
        out["hybrid_layer_ids"] = [i for i, x in enumerate(out["layers_block_type"]) if x == "hybrid"]
    if out.get("model_type") == "zamba":
        out["num_hidden_layers"] = 4  # its shared transformer block is tied across >= 2 hybrid layers
        if isinstance(out.get("layers_block_type"), list):
            out["layers_block_type"] = (out["layers_block_type"] * 2)[:4]
    if out.get("model_type") == "xlstm":
        out["qk_dim_factor"] = 1.0  # transformers 5.5's recurrent tail step assumes qk and v heads match
    if isinstance(out.get("languages"), list) and out["languages"] and out.get("default_language") is None:
        out["default_language"] = out["languages"][0]  # xmod refuses to run without one
    set_present(out, ("num_dense_layers",), lambda v: 1)
    set_present(out, ("zero_expert_num",), lambda v: 2)


def shrink_vision(v: dict, *, text_hidden: int | None) -> dict:
    v = copy.deepcopy(v)
    for k in DROP_KEYS:
        v.pop(k, None)
    set_present(v, ("depth", "num_hidden_layers", "vt_num_hidden_layers", "num_layers", "encoder_layers",
             "conf_num_hidden_layers"), lambda x: 2)
    set_present(v, ("conf_num_attention_heads",), lambda x: HEADS)
    set_present(v, ("hidden_size", "embed_dim", "vt_hidden_size", "d_model", "width"), lambda x: HIDDEN)
    set_present(v, ("num_heads", "num_attention_heads", "vt_num_attention_heads", "encoder_attention_heads"),
         lambda x: HEADS)
    set_present(v, ("num_key_value_heads",), lambda x: HEADS)
    set_present(v, ("intermediate_size", "vt_intermediate_size", "encoder_ffn_dim"), lambda x: INTER)
    set_present(v, ("head_dim", "global_head_dim"), lambda x: HIDDEN // HEADS)
    if text_hidden:
        set_present(v, ("out_hidden_size", "text_hidden_size", "projection_dim", "output_dim"), lambda x: text_hidden)
    if isinstance(v.get("deepstack_visual_indexes"), list) and v["deepstack_visual_indexes"]:
        v["deepstack_visual_indexes"] = [0]
    set_present(v, ("num_position_embeddings",), lambda x: 64)
    set_present(v, ("projector_input_dim", "projector_output_dim", "vision_output_dim"), lambda x: HIDDEN)
    return v
