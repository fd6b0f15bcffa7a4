"""Read architecture facts out of raw config dicts, whatever naming convention a family uses.

Configs express the same idea in many ways (a `layer_types` list, a period, a pattern string, 1-based
index lists, per-block dicts); every reader here turns one of those conventions into the canonical form
the analysis reports, so the rest of the project never needs to know which convention a model used.
"""

from __future__ import annotations

from typing import Any

NESTED_TEXT_KEYS = ("text_config", "llm_config", "language_config")
SSM_LAYERS = {"mamba", "mamba2", "ssm", "recurrent", "rwkv", "mlstm"}
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")

# nemotron_h style: one character per layer
PATTERN_CHARS = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}
# spellings seen in layer_types lists that mean the same thing as a canonical name
LAYER_ALIASES = {"sliding_window": "sliding_attention", "local_attention": "sliding_attention",
                 "global_attention": "full_attention", "full": "full_attention", "sliding": "sliding_attention",
                 "linear": "linear_attention", "chunked": "chunked_attention", "global": "full_attention",
                 "local": "sliding_attention"}
# whole families whose every layer is one recurrent mixer
RECURRENT_TYPES = {"mamba": "mamba", "mamba2": "mamba", "falcon_mamba": "mamba", "rwkv": "rwkv",
                   "xlstm": "mlstm"}


def first_int(d: dict, *keys: str) -> int | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def text_config_key(raw: dict) -> str | None:
    for k in NESTED_TEXT_KEYS:
        if isinstance(raw.get(k), dict):
            return k
    return None


def is_vlm(raw: dict, key: str | None) -> bool:
    if isinstance(raw.get("vision_config"), dict) or isinstance(raw.get("audio_config"), dict):
        return True
    archs = raw.get("architectures") or []
    return key is not None and any("ConditionalGeneration" in a for a in archs)


def num_layers(t: dict) -> int | None:
    return first_int(t, *LAYER_COUNT_KEYS)


# -- layer pattern -------------------------------------------------------------------------------------


def layer_pattern(t: dict) -> list[str]:
    """The per-layer token-mixer list, whatever convention the config uses (first match wins)."""
    n = num_layers(t)
    mt = str(t.get("model_type", ""))
    for reader in (_from_override_string, _from_list, _from_index_lists, _from_periods, _from_blocks):
        got = reader(t, n)
        if got:
            return got
    if n is None:
        return []
    if mt in RECURRENT_TYPES:
        return [RECURRENT_TYPES[mt]] * n
    if mt == "falcon_h1":  # attention and mamba run side by side in every layer
        return ["attention+mamba"] * n
    return [_default_attention(t, i) for i in range(n)]


def _from_override_string(t: dict, n: int | None) -> list[str] | None:
    s = t.get("hybrid_override_pattern")
    if isinstance(s, str) and s and set(s) <= set(PATTERN_CHARS):
        return [PATTERN_CHARS[c] for c in s]
    return None


def _norm(name: str) -> str:
    name = name.strip().lower()
    return LAYER_ALIASES.get(name, name)


def _from_list(t: dict, n: int | None) -> list[str] | None:
    for key in ("layer_types", "layers_block_type", "attention_layers", "attn_layers"):
        v = t.get(key)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return [_norm(x) for x in v]
    v = t.get("block_types")  # recurrent_gemma: a short cycle repeated over the depth
    if isinstance(v, list) and v and n:
        return [_norm(v[i % len(v)]) for i in range(n)]
    v = t.get("attn_type_list")  # MiniMax-Text: 0 lightning (linear), 1 softmax
    if isinstance(v, list) and v and all(x in (0, 1) for x in v):
        return ["full_attention" if x else "linear_attention" for x in v]
    return None


def _from_index_lists(t: dict, n: int | None) -> list[str] | None:
    lin = t.get("linear_attn_config")
    if isinstance(lin, dict) and isinstance(lin.get("full_attn_layers"), list) and n:
        full = set(lin["full_attn_layers"])  # 1-based, as the Kimi linear configs write them
        return ["full_attention" if i + 1 in full else "linear_attention" for i in range(n)]
    idx = t.get("attn_layer_indices")  # bamba: 0-based indices of attention layers among mamba
    if "attn_layer_indices" in t and n and (idx is None or isinstance(idx, list)):
        idx = idx or []
        return ["attention" if i in set(idx) else "mamba" for i in range(n)]
    idx = t.get("full_attn_idxs")  # early lfm2: conv everywhere else
    if isinstance(idx, list) and n:
        return ["full_attention" if i in set(idx) else "conv" for i in range(n)]
    return None


def _from_periods(t: dict, n: int | None) -> list[str] | None:
    if not n:
        return None
    k = t.get("full_attention_interval")
    if isinstance(k, int) and k > 0:
        return ["full_attention" if (i + 1) % k == 0 else "linear_attention" for i in range(n)]
    period, offset = t.get("attn_layer_period"), t.get("attn_layer_offset")
    if isinstance(period, int) and isinstance(offset, int) and period > 0:  # jamba
        return ["attention" if i % period == offset else "mamba" for i in range(n)]
    k = t.get("sliding_window_pattern", t.get("_sliding_window_pattern"))
    if isinstance(k, int) and k > 0 and t.get("sliding_window"):
        return ["full_attention" if (i + 1) % k == 0 else "sliding_attention" for i in range(n)]
    chunk = t.get("attention_chunk_size")
    if isinstance(chunk, int) and chunk > 0:  # llama4: rope layers attend in chunks, NoPE layers globally
        nope = t.get("no_rope_layers")
        if isinstance(nope, list) and len(nope) == n:
            return ["chunked_attention" if x else "full_attention" for x in nope]
        step = t.get("no_rope_layer_interval", 4)
        return ["full_attention" if (i + 1) % step == 0 else "chunked_attention" for i in range(n)]
    return None


def _from_blocks(t: dict, n: int | None) -> list[str] | None:
    blocks = t.get("block_configs")  # nemotron-nas: per-layer dicts, some layers skip attention
    if isinstance(blocks, list) and blocks and all(isinstance(b, dict) for b in blocks):
        out = []
        for b in blocks:
            att = b.get("attention") or {}
            if att.get("no_op"):
                out.append("no_attention")
            elif att.get("replace_with_linear"):
                out.append("linear_projection")
            else:
                out.append("sliding_attention" if att.get("window_length") else "full_attention")
        return out
    return None


def _default_attention(t: dict, i: int) -> str:
    window = t.get("sliding_window")
    if not window or t.get("use_sliding_window") is False:
        return "full_attention"
    mwl = t.get("max_window_layers")
    if t.get("use_sliding_window") is True and isinstance(mwl, int):
        return "sliding_attention" if i >= mwl else "full_attention"  # qwen2's rule
    return "sliding_attention"


def mixer_family(layer: str) -> str:
    if "+" in layer:
        return "parallel"
    if layer in ("moe", "mlp"):
        return "mlp"
    if layer in ("no_attention", "linear_projection"):
        return "none"
    if layer == "linear_attention":
        return "linear"
    if layer in SSM_LAYERS:
        return "recurrent" if layer in ("recurrent", "rwkv", "mlstm") else "ssm"
    if layer == "conv":
        return "conv"
    return "attention"


def sliding_window(t: dict, layers: list[str]) -> int | None:
    if "sliding_attention" in layers:
        w = first_int(t, "sliding_window", "attention_window_size", "window_size")
        if w is None:  # nemotron-nas keeps the window inside each block
            for b in t.get("block_configs") or []:
                w = w or (b.get("attention") or {}).get("window_length")
        return w
    if "chunked_attention" in layers:
        return first_int(t, "attention_chunk_size")
    return None


# -- mixture of experts, MLA, MTP --------------------------------------------------------------------


def moe_info(t: dict, n: int | None) -> dict | None:
    experts = first_int(t, "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts")
    if not experts or experts < 2 or t.get("enable_moe_block") is False or t.get("is_moe") is False:
        return None
    shared = first_int(t, "n_shared_experts", "num_shared_experts")
    if shared is None:
        sis = first_int(t, "shared_expert_intermediate_size", "moe_shared_expert_intermediate_size")
        shared = 1 if sis else 0
    first_dense = first_int(t, "first_k_dense_replace", "first_k_dense")
    freq = t.get("moe_layer_freq")
    if first_dense is None and isinstance(freq, list):
        first_dense = next((i for i, x in enumerate(freq) if x), len(freq))
    kinds = t.get("mlp_layer_types")
    if first_dense is None and isinstance(kinds, list) and kinds:
        first_dense = next((i for i, x in enumerate(kinds) if x != "dense"), len(kinds))
    router_bias = bool(t.get("use_routing_bias") or t.get("router_bias") or t.get("topk_method") == "noaux_tc"
                       or t.get("moe_router_enable_expert_bias"))
    return {
        "num_experts": experts,
        "num_shared_experts": shared,
        "top_k": first_int(t, "num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k_experts",
                           "moe_topk", "num_selected_experts", "moe_k"),
        "first_k_dense": first_dense or 0,
        "moe_layer_freq": freq if freq is not None
        else first_int(t, "decoder_sparse_step", "interleave_moe_layer_step"),
        "moe_intermediate_size": first_int(t, "moe_intermediate_size", "expert_intermediate_size",
                                           "routed_expert_hidden_size", "intermediate_size"),
        "mlp_only_layers": t.get("mlp_only_layers") or [],
        "router_bias": router_bias,
        "scoring_func": t.get("scoring_func") or t.get("moe_router_activation_func"),
        "n_group": first_int(t, "n_group", "num_expert_group"),
        "topk_group": first_int(t, "topk_group"),
        "norm_topk_prob": t.get("norm_topk_prob"),
        "routed_scaling_factor": t.get("routed_scaling_factor"),
    }


MLA_KEYS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


def mla_info(t: dict) -> dict | None:
    if not isinstance(t.get("kv_lora_rank"), int):
        return None
    return {k: t.get(k) for k in MLA_KEYS}


def mtp_layers(t: dict) -> int:
    n = first_int(t, "num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_layers")
    if n is not None:
        return n
    if t.get("use_mtp") is not False and first_int(t, "num_mtp_modules"):
        return first_int(t, "num_mtp_modules") or 0
    return 1 if t.get("mtp_hybrid_override_pattern") else 0


# -- the rest --------------------------------------------------------------------------------------------


def head_dim(t: dict, hidden: int | None, heads: int | None) -> int | None:
    explicit = first_int(t, "head_dim", "kv_channels", "attention_head_dim")
    if explicit:
        return explicit
    return hidden // heads if hidden and heads else None


def activation(t: dict) -> str | None:
    for k in ("hidden_act", "hidden_activation", "activation_function", "mlp_hidden_act", "activation"):
        if isinstance(t.get(k), str):
            return t[k]
    return None


def tie_embeddings(raw: dict, key: str | None) -> bool:
    for d in ((raw.get(key) or {}) if key else {}, raw):
        if isinstance(d.get("tie_word_embeddings"), bool):
            return d["tie_word_embeddings"]
    try:  # absent: the config class default decides, as transformers would
        from transformers import CONFIG_MAPPING

        mt = (raw.get(key) or {}).get("model_type") if key else raw.get("model_type")
        return bool(getattr(CONFIG_MAPPING[mt](), "tie_word_embeddings", False))
    except Exception:  # noqa: BLE001 - unknown or unconstructible type: nothing ties by default
        return False


def rope_info(t: dict) -> dict:
    params = t.get("rope_parameters") if isinstance(t.get("rope_parameters"), dict) else None
    scaling = t.get("rope_scaling") if isinstance(t.get("rope_scaling"), dict) else None
    if params and all(isinstance(v, dict) for v in params.values()):  # per layer type (gemma3/4)
        return {"per_layer_type": {k: _rope_one(v, t) for k, v in params.items()}}
    return _rope_one({**(scaling or {}), **(params or {})}, t)


def _rope_one(p: dict, t: dict) -> dict:
    theta = p.get("rope_theta", t.get("rope_theta", t.get("rotary_emb_base", t.get("rope_base"))))
    partial = p.get("partial_rotary_factor", t.get("partial_rotary_factor", t.get("rotary_pct")))
    rdim, hd = t.get("rotary_dim"), first_int(t, "head_dim")
    if partial is None and isinstance(rdim, int) and hd:
        partial = rdim / hd
    out: dict[str, Any] = {"theta": theta, "type": p.get("rope_type", p.get("type", "default" if theta else None)),
                           "factor": p.get("factor"), "partial_rotary_factor": partial}
    for k in ("original_max_position_embeddings", "mrope_section"):
        if k in p:
            out[k] = p[k]
    return out
