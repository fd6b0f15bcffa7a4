"""Shrink a real config to a tiny one that keeps its identity.

Tiny means a few thousand-wide tensors instead of billions of parameters; identity means the same
model_type and architectures, every kind of layer the original has, the same attention shape (explicit
head_dim, GQA/MQA/MHA), experts routed the same way, MLA ranks, MTP and windows still exercised by a short
sequence. Families spell sizes differently, so every rule below names all spellings it knows.

Multi-token prediction: the count is kept at 1 in the tiny config so the analysis still sees the feature,
but transformers 5.5 builds no MTP modules for any family (checkpoints' `mtp.*` weights are ignored on load),
so the tiny model has no MTP weights either. Mamba CUDA kernels are switched off: tiny models run on CPU.
"""

from __future__ import annotations

import copy
from typing import Any

from tools.hf import facts as pat
from tools.tiny.sizes import (
    DROP_KEYS, EXPERT_INTER, EXPERT_INTER_KEYS, EXPERT_KEYS, HEAD_KEYS, HEADS, HIDDEN, HIDDEN_KEYS, INTER, INTER_KEYS,
    KV_KEYS, LAYER_KEYS, MAX_POS, MLA_SIZES, MTP_KEYS, ORIG_POS, POS_KEYS, SHARED_KEYS, SKIP_NESTED, TOPK_KEYS, VOCAB,
    VOCAB_KEYS, family_fixups, int_of, set_present, shrink_linear_and_ssm, shrink_vision,
)


def shrink_config(raw: dict, analysis=None, *, max_seq: int = 64) -> dict:
    """A tiny config dict of the same model_type; `analysis` may be passed to avoid recomputing it."""
    from tools.hf.config import analyze

    analysis = analysis or analyze(raw)
    out = copy.deepcopy(raw)
    for k in DROP_KEYS:
        out.pop(k, None)
    key = analysis.text_config_key
    _fill_class_defaults(out, key)
    if key:
        out[key] = shrink_text(out[key], max_seq=max_seq)
        for k in DROP_KEYS:
            out[key].pop(k, None)
        if isinstance(out.get("vision_config"), dict):
            out["vision_config"] = shrink_vision(out["vision_config"], text_hidden=int_of(out[key], *HIDDEN_KEYS))
        _remap_token_ids(out, int_of(out[key], "vocab_size") or VOCAB)
    else:
        out = shrink_text(out, max_seq=max_seq)
        if isinstance(out.get("vision_config"), dict):
            out["vision_config"] = shrink_vision(out["vision_config"], text_hidden=int_of(out, *HIDDEN_KEYS))
    if isinstance(out.get("audio_config"), dict):
        out["audio_config"] = shrink_vision(out["audio_config"], text_hidden=None)
    for k, v in list(out.items()):  # other sub-models (encoders, patchers, depth decoders) shrink alike
        if k.endswith("_config") and k not in SKIP_NESTED and isinstance(v, dict) and k != key \
                and any(x in v for x in HIDDEN_KEYS + LAYER_KEYS + VOCAB_KEYS):
            out[k] = shrink_text(v, max_seq=max_seq)
            for d in DROP_KEYS:
                out[k].pop(d, None)
    family_fixups(out)
    if analysis.tie_word_embeddings:
        # with tied embeddings and a 0.02 init the residual stream is mostly the input embedding, so greedy
        # decoding echoes one token forever; a wider init lets the layers move the argmax
        target = out[key] if key else out
        target["initializer_range"] = 0.1
        for k in ("init_std", "embed_init_std"):
            if k in target:
                target[k] = 0.1
    out["dtype"] = "float32"
    return out


def _fill_class_defaults(out: dict, key: str | None) -> None:
    """What a raw config omits, transformers fills from class defaults at full size (a whole default vision
    tower, special ids far beyond the tiny vocabulary); make those explicit so they get shrunk too."""
    try:
        from transformers import CONFIG_MAPPING

        cls = CONFIG_MAPPING[out["model_type"]]
    except (ImportError, KeyError):
        return
    subs = getattr(cls, "sub_configs", None) or {}
    for name, sub_cls in subs.items():
        if name not in out and name != key and name in ("vision_config", "audio_config"):
            try:
                out[name] = {k: v for k, v in sub_cls().to_dict().items() if k not in DROP_KEYS}
            except Exception:  # noqa: BLE001 - generic sub-config slots cannot be defaulted; leave them
                pass
    text_cls = subs.get(key, cls) if key else cls
    text = out[key] if key else out
    try:
        defaults = text_cls()
    except Exception:  # noqa: BLE001
        return
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if name not in text and getattr(defaults, name, None) is not None:
            text[name] = getattr(defaults, name)


def shrink_text(t: dict, *, max_seq: int = 64) -> dict:
    t = copy.deepcopy(t)
    orig = copy.deepcopy(t)
    hidden0 = int_of(orig, *HIDDEN_KEYS)
    heads0 = int_of(orig, *HEAD_KEYS)
    kv0 = int_of(orig, *KV_KEYS)
    explicit_hd = int_of(orig, "head_dim")
    keep_explicit_hd = bool(explicit_hd and hidden0 and heads0 and explicit_hd != hidden0 // heads0
                            and explicit_hd != int_of(orig, "qk_rope_head_dim"))

    set_present(t, HIDDEN_KEYS, lambda v: HIDDEN)
    set_present(t, HEAD_KEYS, lambda v: HEADS)
    # kv heads: keep the sharing scheme (MHA, MQA or grouped), not the ratio's exact value
    set_present(t, KV_KEYS, lambda v: HEADS if heads0 and v >= heads0 else (1 if v == 1 else 2))
    set_present(t, INTER_KEYS, lambda v: INTER)
    set_present(t, EXPERT_INTER_KEYS, lambda v: EXPERT_INTER)
    set_present(t, VOCAB_KEYS, lambda v: VOCAB)
    for k, v in list(t.items()):  # hashed/byte-group vocabularies and the like
        if "vocab" in k and k not in VOCAB_KEYS and isinstance(v, int) and not isinstance(v, bool) and v > VOCAB:
            t[k] = VOCAB
    set_present(t, POS_KEYS, lambda v: max(MAX_POS, 4 * max_seq))
    for k in KV_KEYS[:1]:
        if k in t and t[k] is None and "num_attention_heads" in t:
            t[k] = HEADS  # None means "same as heads" in the config, but some models divide by it
    if "head_dim" in t:
        if keep_explicit_hd:
            t["head_dim"] = 2 * HIDDEN // HEADS  # still explicit, still different from hidden/heads
        elif isinstance(t["head_dim"], int) or (t["head_dim"] is None and "num_attention_heads" in t
                                                  and not isinstance(orig.get("kv_lora_rank"), int)):
            t["head_dim"] = HIDDEN // HEADS  # None means derived, but some model classes read it directly
    for k in ("global_head_dim", "kv_channels", "attention_head_dim", "attention_head_size", "d_head"):
        set_present(t, (k,), lambda v: 2 * HIDDEN // HEADS if v != (hidden0 or 0) // (heads0 or 1) else HIDDEN // HEADS)
    _shrink_mla(t, orig)
    _shrink_moe(t, orig)
    _shrink_layers(t, orig, max_seq)
    set_present(t, MTP_KEYS, lambda v: 1)
    _shrink_rope(t, orig)
    shrink_linear_and_ssm(t, orig)
    _remap_token_ids(t, int_of(t, "vocab_size") or VOCAB)
    return t


def _shrink_mla(t: dict, orig: dict) -> None:
    if not isinstance(orig.get("kv_lora_rank"), int) and not isinstance(orig.get("q_lora_rank"), int):
        return
    for k, v in MLA_SIZES.items():
        set_present(t, (k,), lambda _old, v=v: v)
    if "qk_head_dim" in t:
        t["qk_head_dim"] = (t.get("qk_nope_head_dim") or 0) + (t.get("qk_rope_head_dim") or 0)
    if isinstance(orig.get("head_dim"), int) and orig["head_dim"] == orig.get("qk_rope_head_dim"):
        t["head_dim"] = t["qk_rope_head_dim"]  # deepseek derives head_dim from the rope part


def _fill_moe_defaults(t: dict, orig: dict) -> None:
    """Some default configs leave routing sizes None (the real checkpoints set them); a model cannot be
    built that way, so give them the smallest values that still route."""
    experts_key = next((k for k in EXPERT_KEYS if k in orig), None)
    if experts_key is None or "enable_moe_block" in orig:
        return
    if orig[experts_key] is None and isinstance(orig.get("moe_intermediate_size"), int):
        orig[experts_key] = t[experts_key] = 4
    if not int_of(orig, *EXPERT_KEYS):
        return
    for k in TOPK_KEYS[:1]:
        if k in orig and orig[k] is None:
            orig[k] = t[k] = 2
    for k in ("n_group", "topk_group"):
        if k in orig and orig[k] is None:
            orig[k] = t[k] = 1
    for k in SHARED_KEYS:
        if k in orig and orig[k] is None:
            orig[k] = t[k] = 1


def _shrink_moe(t: dict, orig: dict) -> None:
    _fill_moe_defaults(t, orig)
    experts0 = int_of(orig, *EXPERT_KEYS)
    if not experts0 or experts0 < 2:
        return
    topk0 = int_of(orig, *TOPK_KEYS) or 2
    topk = min(topk0, 2)
    groups0 = int_of(orig, "n_group", "num_expert_group")
    experts = max(topk + 2, 4)
    if groups0 and groups0 > 1:
        experts = max(experts, 4)  # two groups of two: group scoring sums the top-2 of each group
        set_present(t, ("n_group", "num_expert_group"), lambda v: 2)
        set_present(t, ("topk_group",), lambda v: 1 if topk <= 2 else 2)
    else:
        set_present(t, ("n_group", "num_expert_group", "topk_group"), lambda v: 1)
    set_present(t, EXPERT_KEYS, lambda v: experts)
    set_present(t, TOPK_KEYS, lambda v: topk)
    set_present(t, SHARED_KEYS, lambda v: 1)
    set_present(t, ("first_k_dense_replace", "first_k_dense"), lambda v: 1)
    set_present(t, ("decoder_sparse_step", "interleave_moe_layer_step", "expert_layer_period"), lambda v: min(v, 2))
    if isinstance(t.get("expert_layer_offset"), int) and isinstance(t.get("expert_layer_period"), int):
        t["expert_layer_offset"] = min(t["expert_layer_offset"], t["expert_layer_period"] - 1)
    if isinstance(orig.get("mlp_only_layers"), list) and orig["mlp_only_layers"]:
        t["mlp_only_layers"] = [0]


def _compressed(pattern: list[str]) -> list[str]:
    """One layer of each kind, in order of first appearance (the attention kind last when the family puts
    its full-attention layer at the end of each period, as interval configs do)."""
    seen: list[str] = []
    for x in pattern:
        if x not in seen:
            seen.append(x)
    return seen


def _shrink_layers(t: dict, orig: dict, max_seq: int) -> None:
    pattern = pat.layer_pattern(orig)
    kinds = _compressed(pattern)
    first_dense = int_of(orig, "first_k_dense_replace", "first_k_dense")
    n = max(2, len(kinds))
    if first_dense and len(kinds) < 2:
        n = 2  # one dense-first layer, one MoE layer
    for k in pat.LAYER_COUNT_KEYS:
        if isinstance(t.get(k), int) and t[k] > 0:
            t[k] = n
    if int_of(orig, "num_layers") and orig.get("num_hidden_layers") == 2 * orig["num_layers"]:
        t["num_hidden_layers"] = 2 * n  # longcat_flash counts two sub-layers per layer
    layout = (kinds + [kinds[-1]] * n)[:n] if kinds else []

    if isinstance(t.get("hybrid_override_pattern"), str):
        inv = {v: c for c, v in pat.PATTERN_CHARS.items()}
        t["hybrid_override_pattern"] = "".join(inv[x] for x in layout)
    if isinstance(t.get("mtp_hybrid_override_pattern"), str):
        t["mtp_hybrid_override_pattern"] = t["mtp_hybrid_override_pattern"][:2]
    for key in ("layer_types", "layers_block_type", "attention_layers", "attn_layers"):
        if isinstance(orig.get(key), list):
            names = _compressed(orig[key])
            t[key] = (names + [names[-1]] * n)[:n]
    if isinstance(orig.get("block_types"), list):
        t["block_types"] = _compressed(orig["block_types"])
        t["num_hidden_layers"] = max(n, len(t["block_types"]))
    if isinstance(t.get("attn_type_list"), list):
        t["attn_type_list"] = [0, 1][:n] + [1] * (n - 2)
    if isinstance(t.get("full_attention_interval"), int):
        t["full_attention_interval"] = n  # last layer of the tiny stack is the full-attention one
    if isinstance(t.get("attn_layer_period"), int):
        t["attn_layer_period"], t["attn_layer_offset"] = 2, 1
    if isinstance(t.get("attn_layer_indices"), list):
        t["attn_layer_indices"] = [n - 1]
    if isinstance(t.get("full_attn_idxs"), list):
        t["full_attn_idxs"] = [n - 1]
    if isinstance(t.get("cross_attention_layers"), list) and t["cross_attention_layers"]:
        t["cross_attention_layers"] = [n - 1]  # mllama: keep one cross-attention layer (indices of the full stack)
    for k in ("sliding_window_pattern", "_sliding_window_pattern"):
        if isinstance(t.get(k), int) and t[k] > 1:
            t[k] = 2
    if isinstance(t.get("no_rope_layers"), list) or isinstance(orig.get("attention_chunk_size"), int):
        t["no_rope_layers"] = [1] * (n - 1) + [0]
    if isinstance(t.get("no_rope_layer_interval"), int):
        t["no_rope_layer_interval"] = 2
    if isinstance(t.get("linear_attn_config"), dict):
        lin = t["linear_attn_config"]
        lin["full_attn_layers"], lin["kda_layers"] = [n], list(range(1, n))
        set_present(lin, ("head_dim",), lambda v: HIDDEN // HEADS)
        set_present(lin, ("num_heads",), lambda v: HEADS)
    if isinstance(t.get("block_configs"), list) and t["block_configs"]:
        seen, blocks = set(), []
        for b in orig["block_configs"]:
            sig = repr(sorted((k, repr(v)) for k, v in (b.get("attention") or {}).items()))
            if sig not in seen:
                seen.add(sig)
                blocks.append(b)
        t["block_configs"] = (blocks + [blocks[-1]] * n)[:max(n, len(blocks))]
        t["num_hidden_layers"] = len(t["block_configs"])
    if isinstance(orig.get("moe_layer_freq"), list):
        nl = t.get("num_hidden_layers", n)
        t["moe_layer_freq"] = [0] * min(first_dense or 0, nl - 1) + [1] * (nl - min(first_dense or 0, nl - 1))
    if set(layout) <= {"mamba"} and any(k.startswith("mamba_") for k in orig) and int_of(orig, *HEAD_KEYS):
        # hybrid families whose default config has no attention layer at all: transformers' cache needs one,
        # and real checkpoints always place some
        if "layer_types" in orig:
            t["layer_types"] = ["mamba", "attention"]
        if "attn_layer_indices" in orig:
            t["attn_layer_indices"] = [n - 1]
    if isinstance(orig.get("attention_types"), list) and isinstance(t.get("attention_layers"), list):
        t["attention_types"] = [[t["attention_layers"], 1]]  # gpt_neo: [[kinds, repeats]]
    if isinstance(t.get("num_kv_shared_layers"), int) and t["num_kv_shared_layers"] > 0 and "layer_types" in t:
        t["layer_types"] = t["layer_types"] * 2  # gemma3n: the shared tail re-reads earlier layers' kv
        t["num_kv_shared_layers"] = len(t["layer_types"]) // 2
        t["num_hidden_layers"] = n = len(t["layer_types"])
    nl = t.get("num_hidden_layers", n)
    for k, v in list(t.items()):  # other per-layer lists follow the new depth
        if isinstance(v, list) and len(v) == (pat.num_layers(orig) or -1) and len(v) > nl and k != "layer_types":
            if all(isinstance(x, str) for x in v):  # kinds (mlp_layer_types): keep one of each
                names = _compressed(v)
                t[k] = (names + [names[-1]] * nl)[:nl]
            else:
                t[k] = [INTER if k in INTER_KEYS else x for x in v[:nl]]
    if isinstance(orig.get("moe_layers"), list):  # llama4: explicit indices of the MoE layers
        every = len(orig["moe_layers"]) >= (pat.num_layers(orig) or 0)
        t["moe_layers"] = list(range(t.get("num_hidden_layers", n))) if every else [n - 1]
    for k in ("max_window_layers",):
        if isinstance(t.get(k), int):
            t[k] = min(t[k], n // 2) if orig.get("use_sliding_window") else n
    # doge's keep_window_size: keys beyond it are dropped by its dynamic mask (a top-k a short trace never takes)
    for k in ("sliding_window", "attention_window_size", "attention_chunk_size", "window_size", "keep_window_size"):
        set_present(t, (k,), lambda v: min(v, max(4, max_seq // 4)))
    # a DSA indexer's top-k: at 2048 every key of a tiny model's sequences is selected, the sparse path never runs
    set_present(t, ("index_topk",), lambda v: min(v, max(4, max_seq // 8)))


def _shrink_rope(t: dict, orig: dict) -> None:
    head = int_of(t, "head_dim") or HIDDEN // HEADS
    for key in ("rope_scaling", "rope_parameters"):
        p = t.get(key)
        if not isinstance(p, dict):
            continue
        for sub in ([p] + [v for v in p.values() if isinstance(v, dict)]):
            set_present(sub, ("original_max_position_embeddings",), lambda v: ORIG_POS)
            kind = sub.get("rope_type", sub.get("type"))
            if kind == "yarn" and isinstance(sub.get("factor"), (int, float)) and sub["factor"] > 1:
                # yarn reads max/original as its scaling ratio: keep that ratio equal to the factor
                for k in POS_KEYS:
                    if isinstance(t.get(k), int):
                        t[k] = max(t[k], int(ORIG_POS * sub["factor"]))
            if isinstance(sub.get("mrope_section"), list):
                # sections cover the rotary half-dims, which may be a fraction of the head (partial rotary)
                sections = sub["mrope_section"]
                head0 = int_of(orig, "head_dim") or (int_of(orig, *HIDDEN_KEYS) or 2) // (int_of(orig, *HEAD_KEYS) or 1)
                share = min(1.0, sum(sections) / max(1, head0 // 2))
                sub["mrope_section"] = _split(max(len(sections), round(head // 2 * share)), sections)
    set_present(t, ("rotary_dim",), lambda v: max(2, head // 2) if v < (int_of(orig, "head_dim") or v + 1) else head)


def _split(total: int, parts: list[int]) -> list[int]:
    """Rescale a section list (e.g. mrope's [t, h, w]) to sum to `total`, keeping its proportions."""
    s = sum(parts) or 1
    out = [max(1, p * total // s) for p in parts]
    out[0] += total - sum(out)
    return out


def _remap_token_ids(d: dict, vocab: int) -> None:
    """Move special ids inside the tiny vocabulary, keeping which ones are equal to each other."""
    small: dict[int, int] = {}
    taken = {v for k, v in d.items() if k.endswith(("_token_id", "_token_index")) and isinstance(v, int)
             and not isinstance(v, bool) and 0 <= v < vocab}
    free_low = (i for i in range(vocab) if i not in taken)
    free_high = (i for i in range(vocab - 1, -1, -1) if i not in taken)

    def remap(key: str, v: Any) -> Any:
        if isinstance(v, list):
            return [remap(key, x) for x in v]
        if not isinstance(v, int) or isinstance(v, bool) or v < vocab or v < 0:
            return v
        if v not in small:
            # generation ids near the bottom (where the tokenizer puts specials), media ids at the top
            core = key in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
            small[v] = next(free_low) if core else next(free_high)
        return small[v]

    for key in sorted(d, key=lambda k: k not in ("pad_token_id", "bos_token_id", "eos_token_id")):
        if key.endswith(("_token_id", "_token_index", "_token_ids")):
            d[key] = remap(key, d[key])


