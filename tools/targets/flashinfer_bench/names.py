"""Kernel Definition names for FlashInfer-Bench: which names a module runs, and what a name means.

A name carries its sizes (`gemm_n6144_k4096`, `gqa_paged_decode_h32_kv8_d128_ps1`); a module's names
follow from the config and the TP/EP setting, and a name parses back into its op family and the constant
axes a Definition of it must declare.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.targets.flashinfer_bench.model import Module, Parallel

# name pattern -> (family, const axes computed from the captured numbers)
FAMILIES = [
    (r"rmsnorm_h(\d+)", "rmsnorm", lambda h: {"hidden_size": h}),
    (r"fused_add_rmsnorm_h(\d+)", "fused_add_rmsnorm", lambda h: {"hidden_size": h}),
    (r"gemm_n(\d+)_k(\d+)", "gemm", lambda n, k: {"N": n, "K": k}),
    (r"gqa_paged_(decode|prefill_causal)_h(\d+)_kv(\d+)_d(\d+)_ps(\d+)", "gqa_paged",
     lambda s, h, kv, d, ps: {"num_qo_heads": h, "num_kv_heads": kv, "head_dim": d, "page_size": ps}),
    (r"gqa_ragged_prefill_causal_h(\d+)_kv(\d+)_d(\d+)", "gqa_ragged",
     lambda h, kv, d: {"num_qo_heads": h, "num_kv_heads": kv, "head_dim": d}),
    (r"mla_paged_(decode|prefill_causal)_h(\d+)_ckv(\d+)_kpe(\d+)_ps(\d+)", "mla_paged",
     lambda s, h, ckv, kpe, ps: {"num_qo_heads": h, "head_dim_ckv": ckv, "head_dim_kpe": kpe, "page_size": ps}),
    (r"mla_ragged_prefill_causal_h(\d+)_qk(\d+)_vo(\d+)", "mla_ragged",
     lambda h, qk, vo: {"num_qo_heads": h, "num_kv_heads": h, "qk_dim": qk, "vo_dim": vo}),
    (r"moe_fp8_block_scale_ds_routing_topk(\d+)_ng(\d+)_kg(\d+)_e(\d+)_h(\d+)_i(\d+)", "moe_ds",
     lambda k, ng, kg, e, h, i: {"num_local_experts": e, "hidden_size": h, "intermediate_size": i,
                                 "gemm1_out_size": 2 * i, "num_hidden_blocks": h // 128,
                                 "num_intermediate_blocks": i // 128, "num_gemm1_out_blocks": 2 * i // 128}),
    (r"moe_fp8_block_scale_renorm_topk(\d+)_e(\d+)_h(\d+)_i(\d+)", "moe_renorm",
     lambda k, e, h, i: {"num_local_experts": e, "hidden_size": h, "intermediate_size": i, "top_k": k,
                         "gemm1_out_size": 2 * i, "num_hidden_blocks": h // 128,
                         "num_intermediate_blocks": i // 128, "num_gemm1_out_blocks": 2 * i // 128}),
    (r"rope_with_cos_sin_cache_(neox|gptj)_style_d(\d+)_rd(\d+)", "rope",
     lambda s, d, rd: {"head_size": d, "rotary_dim": rd}),
    (r"(top_k|top_p|top_k_top_p)_sampling_from_probs_v(\d+)", "sampling", lambda s, v: {"vocab_size": v}),
]


def parse_name(name: str) -> tuple[str, dict, str] | None:
    """(family, const axes, shape key) or None; the shape key is the name with sizes blanked but page
    size and stage kept, so siblings share a reference whose code may depend on them."""
    for pattern, family, consts in FAMILIES:
        m = re.fullmatch(pattern, name)
        if m:
            groups = [g if not g.isdigit() else int(g) for g in m.groups()]
            ps = re.search(r"_ps(\d+)$", name)
            stage = next((g for g in groups if isinstance(g, str)), "")
            return family, consts(*groups), f"{family}:{stage}:{ps.group(1) if ps else ''}"
    return None


# -- kernel names per module ------------------------------------------------------------------------------


def _div(value: int, by: int, what: str) -> int:
    if value % by:
        raise ValueError(f"{what}={value} is not divisible by {by}")
    return value // by


def _norm_width(arg: str, a: dict) -> int | None:
    mla = a.get("mla") or {}
    if "head_dim" in arg:
        return a.get("head_dim") if not mla else mla.get("qk_rope_head_dim")
    if "q_lora_rank" in arg:
        return mla.get("q_lora_rank")
    if "kv_lora_rank" in arg:
        return mla.get("kv_lora_rank")
    if "hidden_size" in arg or not arg:
        return a.get("hidden_size")
    return None


def moe_name(a: dict, p: Parallel) -> str | None:
    moe = a.get("moe") or {}
    experts, k, h = moe.get("num_experts"), moe.get("top_k"), a.get("hidden_size")
    inter = moe.get("moe_intermediate_size")
    if not (experts and k and h and inter):
        return None
    e = _div(experts, p.ep, "num_experts")
    if moe.get("n_group") and moe.get("topk_group") and moe.get("router_bias"):
        routing = f"ds_routing_topk{k}_ng{moe['n_group']}_kg{moe['topk_group']}"
    elif (moe.get("scoring_func") or "softmax") == "softmax":
        routing = f"renorm_topk{k}"
    else:  # sigmoid top-k without groups (Llama 4) has no fp8 block-scale naming in the dataset
        return None
    return f"moe_fp8_block_scale_{routing}_e{e}_h{h}_i{inter}"


def definitions_for(m: Module, a: dict, p: Parallel) -> list[str]:
    """Kernel Definition names one module runs, under tensor/expert parallelism `p`."""
    h, d = a.get("hidden_size"), a.get("head_dim")
    q, kv = a.get("num_attention_heads"), a.get("num_key_value_heads")
    inter = a.get("intermediate_size")
    mla = a.get("mla") or {}
    if m.op == "norm":
        width = _norm_width(m.arg, a)
        if width is None:
            return []
        if width != h:
            return [f"rmsnorm_h{width}"]
        # SGLang fuses the residual add into every hidden-width norm but the first of a layer's input.
        return [f"rmsnorm_h{h}", f"fused_add_rmsnorm_h{h}"] if m.attr == "input_layernorm" \
            else [f"fused_add_rmsnorm_h{h}"]
    if m.op == "attn":
        hq, hkv = _div(q, p.tp, "num_attention_heads"), max(1, kv // p.tp)
        sig = f"h{hq}_kv{hkv}_d{d}"
        return ([f"gqa_paged_prefill_causal_{sig}_ps{ps}" for ps in p.page_sizes]
                + [f"gqa_paged_decode_{sig}_ps{ps}" for ps in p.page_sizes]
                + [f"gqa_ragged_prefill_causal_{sig}"])
    if m.op == "attn_mla":
        hq = _div(q, p.tp, "num_attention_heads")
        ckv, kpe = mla["kv_lora_rank"], mla["qk_rope_head_dim"]
        return ([f"mla_ragged_prefill_causal_h{hq}_qk{mla['qk_nope_head_dim'] + kpe}_vo{mla['v_head_dim']}"]
                + [f"mla_paged_prefill_causal_h{hq}_ckv{ckv}_kpe{kpe}_ps{ps}" for ps in p.page_sizes]
                + [f"mla_paged_decode_h{hq}_ckv{ckv}_kpe{kpe}_ps{ps}" for ps in p.page_sizes])
    if m.op in ("moe_topk", "moe_experts"):
        name = moe_name(a, p)
        return [name] if name else []
    if m.op == "moe_gate":
        return [f"gemm_n{a['moe']['num_experts']}_k{h}"]
    if m.op.startswith("gemm"):
        nk = _gemm_shape(m, a, p, h, d, q, kv, inter, mla)
        return [f"gemm_n{nk[0]}_k{nk[1]}"] if nk else []
    return []  # embedding, lm_head, rope and activations are not tracked per module upstream


def _gemm_shape(m, a, p, h, d, q, kv, inter, mla) -> tuple[int, int] | None:
    tp = p.tp
    moe = a.get("moe") or {}
    ffn = inter
    if (m.parent or "").startswith("shared"):  # the shared experts run as one wider dense MLP
        ffn = (moe.get("moe_intermediate_size") or 0) * max(1, moe.get("num_shared_experts") or 1)
    if m.attr == "gate" and a.get("moe"):
        return a["moe"]["num_experts"], h
    if m.op == "gemm_qkv":
        return (_div(q, tp, "heads") + 2 * max(1, kv // tp)) * d, h
    if m.attr == "gate_up_proj" and ffn:
        return 2 * _div(ffn, tp, "intermediate_size"), h
    if m.attr == "down_proj" and ffn:
        return h, _div(ffn, tp, "intermediate_size")
    if mla:
        nope, rope, v = mla["qk_nope_head_dim"], mla["qk_rope_head_dim"], mla["v_head_dim"]
        hq = _div(q, tp, "heads")
        shapes = {"fused_qkv_a_proj_with_mqa": ((mla["q_lora_rank"] or 0) + mla["kv_lora_rank"] + rope, h),
                  "kv_a_proj_with_mqa": (mla["kv_lora_rank"] + rope, h),
                  "q_b_proj": (hq * (nope + rope), mla["q_lora_rank"] or 0),
                  "q_proj": (hq * (nope + rope), h),
                  "kv_b_proj": (hq * (nope + v), mla["kv_lora_rank"]),
                  "o_proj": (h, hq * v)}
        if m.attr in shapes and all(shapes[m.attr]):
            return shapes[m.attr]
        return None
    if m.attr == "o_proj":
        return h, _div(q, tp, "heads") * d
    return None
