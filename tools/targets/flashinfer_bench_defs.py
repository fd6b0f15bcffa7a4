"""Kernel Definition JSON files for FlashInfer-Bench: derive new ones, and check them inside a sandbox.

A new Definition is made from the closest existing one of the same op family (same name with other
numbers, same page size): its axes, inputs, outputs and reference are kept, the constant axes are set
from the new name, and the reference's constant asserts follow. When the family has no member in the
dataset, a small template of our own covers the simple ops; anything else is left to an implementer.

This file is also the in-sandbox job (`python flashinfer_bench_defs.py spec.json`): it must import
nothing from this project, only the standard library, torch and (when present) flashinfer_bench.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time

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
# Beyond this many tensor elements a CPU reference run would take minutes and gigabytes: skipped, with
# the reason, never counted as passed.
MAX_ELEMENTS = 150_000_000


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


def derive(name: str, dataset: dict[str, dict], model_id: str, parallel: dict) -> tuple[dict | None, str]:
    """(definition, how) for a name missing from `dataset`; (None, why) when no template applies."""
    parsed = parse_name(name)
    if parsed is None:
        return None, "no template: the name matches no known op family"
    family, consts, key = parsed
    siblings = sorted(n for n in dataset if (parse_name(n) or ("", {}, ""))[2] == key)
    if siblings:
        base = dataset[siblings[0]]
        missing = set(consts) - {k for k, v in base["axes"].items() if v.get("type") == "const"}
        if not missing:
            return _from_sibling(base, name, consts, model_id, parallel), f"derived from {siblings[0]}"
    made = OWN_TEMPLATES[family](name, consts, model_id) if family in OWN_TEMPLATES else None
    if made:
        return made, f"own {family} template"
    return None, f"no template for op family {family} and no {key} sibling in the dataset"


# -- kernel names per module ------------------------------------------------------------------------------
# `m` is a flashinfer_bench_model.Module and `p` a Parallel; duck-typed so this file stays importable alone.


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


def moe_name(a: dict, p) -> str | None:
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


def definitions_for(m, a: dict, p) -> list[str]:
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


def _from_sibling(base: dict, name: str, consts: dict, model_id: str, parallel: dict) -> dict:
    d = copy.deepcopy(base)
    d["name"] = name
    ref = d["reference"]
    for axis, value in consts.items():
        old = d["axes"][axis]["value"]
        d["axes"][axis]["value"] = value
        ref = re.sub(rf"(assert\s+{axis}\s*==\s*){old}\b", rf"\g<1>{value}", ref)
    d["reference"] = ref
    tags = [t for t in d.get("tags", []) if not t.startswith(("model:", "status:", "tp:", "ep:"))]
    extra = [f"tp:{parallel['tp']}"] if any(t.startswith("tp:") for t in base.get("tags", [])) else []
    extra += [f"ep:{parallel['ep']}"] if any(t.startswith("ep:") for t in base.get("tags", [])) else []
    d["tags"] = ["status:unverified", f"model:{model_id}", *tags, *extra]
    first = (base.get("description") or "").split(". ")[0].rstrip(".")
    d["description"] = f"{first}. Sizes for {model_id}; derived from {base['name']}."
    return d


def _rmsnorm(name: str, c: dict, model_id: str, fused: bool = False) -> dict:
    # The dataset's convention: eps fixed at 1e-5, the fused variant returns only the normalised sum.
    h = c["hidden_size"]
    io = {"hidden_states": {"shape": ["batch_size", "hidden_size"], "dtype": "bfloat16"}}
    if fused:
        io["residual"] = {"shape": ["batch_size", "hidden_size"], "dtype": "bfloat16"}
    io["weight"] = {"shape": ["hidden_size"], "dtype": "bfloat16"}
    x = "hidden_states.float() + residual.float()" if fused else "hidden_states.float()"
    ref = (f"import torch\n\n\n@torch.no_grad()\ndef run({', '.join(io)}):\n    hidden_size = hidden_states.shape[-1]\n"
           f"    assert hidden_size == {h}\n    x = {x}\n"
           f"    scale = torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + 1e-5)\n"
           f"    return (x * scale * weight.float()).to(hidden_states.dtype)\n")
    return {"name": name, "op_type": "rmsnorm",
            "description": f"RMSNorm{' of hidden_states + residual' if fused else ''}, hidden size {h}, eps 1e-5.",
            "tags": ["status:unverified", f"model:{model_id}"] + (["fused"] if fused else []),
            "axes": {"batch_size": {"type": "var"}, "hidden_size": {"type": "const", "value": h}},
            "inputs": io, "outputs": {"output": {"shape": ["batch_size", "hidden_size"], "dtype": "bfloat16"}},
            "reference": ref}


def _gemm(name: str, c: dict, model_id: str) -> dict:
    ref = ("import torch\n\n\ndef run(A, B):\n"
           f"    assert A.shape[1] == {c['K']} and B.shape == ({c['N']}, {c['K']})\n    return A @ B.T\n")
    return {"name": name, "op_type": "gemm", "description": f"C = A @ B.T with N={c['N']}, K={c['K']}.",
            "tags": ["status:unverified", f"model:{model_id}"],
            "axes": {"M": {"type": "var"}, "N": {"type": "const", "value": c["N"]},
                     "K": {"type": "const", "value": c["K"]}},
            "inputs": {"A": {"shape": ["M", "K"], "dtype": "float16"}, "B": {"shape": ["N", "K"], "dtype": "float16"}},
            "outputs": {"C": {"shape": ["M", "N"], "dtype": "float16"}}, "reference": ref}


_ATTEND = """import math

import torch


def _attend(q, k, v, sm_scale, causal):
    # q [nq, Hq, D], k/v [nk, Hkv, D]; query heads share kv heads in groups; lse is base 2, as FlashInfer's
    group = q.shape[1] // k.shape[1]
    k, v = k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1)
    s = torch.einsum("qhd,khd->hqk", q.float(), k) * float(sm_scale)
    if causal:  # the last query sits at the last key
        nq, nk = q.shape[0], k.shape[0]
        s = s.masked_fill(torch.arange(nk)[None, :] > torch.arange(nq)[:, None] + (nk - nq), float("-inf"))
    out = torch.einsum("hqk,khd->qhd", s.softmax(-1), v)
    return out.to(q.dtype), (torch.logsumexp(s, -1) / math.log(2.0)).transpose(0, 1)

"""


def _attention(name: str, c: dict, model_id: str) -> dict | None:
    """GQA over ragged K/V, or over a paged cache with one token per page (larger pages need a sibling:
    their last-page bookkeeping is part of the interface)."""
    h, kv, d = c["num_qo_heads"], c["num_kv_heads"], c["head_dim"]
    paged, decode = name.startswith("gqa_paged"), "_decode_" in name
    if paged and c.get("page_size") != 1:
        return None
    axes = {"num_qo_heads": {"type": "const", "value": h}, "num_kv_heads": {"type": "const", "value": kv},
            "head_dim": {"type": "const", "value": d}, "len_indptr": {"type": "var"}}
    rows = "batch_size" if decode else "total_q"
    axes[rows] = {"type": "var"}
    t = lambda *shape, dt="bfloat16": {"shape": list(shape) if shape else None, "dtype": dt}  # noqa: E731
    ins = {"q": t(rows, "num_qo_heads", "head_dim")}
    if paged:
        axes.update(page_size={"type": "const", "value": 1}, num_pages={"type": "var"}, num_kv_indices={"type": "var"})
        ins.update(k_cache=t("num_pages", "page_size", "num_kv_heads", "head_dim"),
                   v_cache=t("num_pages", "page_size", "num_kv_heads", "head_dim"))
    else:
        axes["total_kv"] = {"type": "var"}
        ins.update(k=t("total_kv", "num_kv_heads", "head_dim"), v=t("total_kv", "num_kv_heads", "head_dim"))
    if not decode:
        ins["qo_indptr"] = t("len_indptr", dt="int32")
    ins["kv_indptr"] = t("len_indptr", dt="int32")
    if paged:
        ins["kv_indices"] = t("num_kv_indices", dt="int32")
    ins["sm_scale"] = t(dt="float32")
    q_span = "b, b + 1" if decode else "int(qo_indptr[b]), int(qo_indptr[b + 1])"
    kv_rows = ("k_cache[kv_indices[ks:ke].long()].flatten(0, 1)", "v_cache[kv_indices[ks:ke].long()].flatten(0, 1)") \
        if paged else ("k[ks:ke]", "v[ks:ke]")
    ref = (_ATTEND + f"\n@torch.no_grad()\ndef run({', '.join(ins)}):\n"
           f"    assert q.shape[1:] == ({h}, {d}) and {'k_cache' if paged else 'k'}.shape[-2:] == ({kv}, {d})\n"
           f"    output = torch.zeros_like(q)\n    lse = torch.full(q.shape[:2], -float(\"inf\"))\n"
           f"    for b in range(kv_indptr.numel() - 1):\n        qs, qe = {q_span}\n"
           f"        ks, ke = int(kv_indptr[b]), int(kv_indptr[b + 1])\n"
           f"        output[qs:qe], lse[qs:qe] = _attend(q[qs:qe], {kv_rows[0]}, {kv_rows[1]}, sm_scale, "
           f"{not decode})\n    return output, lse\n")
    stage = "decode" if decode else "prefill"
    return {"name": name, "op_type": "gqa_paged" if paged else "gqa_ragged",
            "description": f"Grouped-query attention ({stage}{', causal' if not decode else ''}) over "
                           f"{'a paged KV cache, one token per page' if paged else 'ragged K/V'}.",
            "tags": [f"stage:{stage}", "status:unverified", f"model:{model_id}"], "axes": axes,
            "constraints": ["len_indptr == batch_size + 1"] if decode else ["total_q == qo_indptr[-1].item()"],
            "inputs": ins, "outputs": {"output": t(rows, "num_qo_heads", "head_dim"),
                                       "lse": t(rows, "num_qo_heads", dt="float32")}, "reference": ref}


OWN_TEMPLATES = {
    "rmsnorm": lambda n, c, m: _rmsnorm(n, c, m),
    "fused_add_rmsnorm": lambda n, c, m: _rmsnorm(n, c, m, fused=True),
    "gemm": _gemm,
    "gqa_paged": _attention,
    "gqa_ragged": _attention,
}


# -- in-sandbox checks ---------------------------------------------------------------------------------

VAR_SIZES = {"batch_size": 2, "M": 3, "seq_len": 3, "num_tokens": 3, "total_q": 5, "total_kv": 7,
             "num_pages": 8, "max_seq_len": 16}


def _inputs(defn: dict, torch):
    """Random inputs of the declared shapes; index tensors (indptr, indices, positions) are made valid."""
    var = {}
    for axis, spec in defn["axes"].items():
        if spec.get("type") == "var":
            var[axis] = VAR_SIZES.get(axis, 4)
    ins = defn["inputs"]
    batch = var.get("batch_size", 2)
    if "qo_indptr" in ins:  # ragged/paged prefill: split total_q (and total_kv) over the batch
        batch = 2
    sizes = {**{a: s["value"] for a, s in defn["axes"].items() if s.get("type") == "const"}, **var}
    for nm in ("len_indptr",):
        if nm in sizes:
            sizes[nm] = batch + 1
    q_per, kv_per = 2, 3
    if "total_q" in sizes:
        sizes["total_q"] = q_per * batch
    if "total_kv" in sizes:
        sizes["total_kv"] = kv_per * batch
    if "num_kv_indices" in sizes:
        sizes["num_kv_indices"] = kv_per * batch
        sizes["num_pages"] = max(sizes.get("num_pages", 8), kv_per * batch)
    total = 0
    for spec in ins.values():
        n = 1
        for axis in spec["shape"] or []:
            n *= sizes[axis]
        total += n
    if total > MAX_ELEMENTS:
        return None, f"inputs need {total:,} elements (> {MAX_ELEMENTS:,}): too large for a CPU run"
    out = []
    for name, spec in ins.items():
        shape = [sizes[a] for a in spec["shape"] or []]
        dtype = getattr(torch, spec["dtype"])
        if name == "qo_indptr":
            t = torch.arange(batch + 1, dtype=dtype) * q_per
        elif name == "kv_indptr":
            t = torch.arange(batch + 1, dtype=dtype) * kv_per
        elif name.endswith("indices"):
            t = torch.randperm(sizes.get("num_pages", 8))[: shape[0]].to(dtype)
        elif name == "positions":
            t = torch.randint(0, sizes.get("max_seq_len", 16), shape, dtype=dtype)
        elif name in ("sm_scale", "scale"):
            t = torch.tensor(1.0 / (sizes.get("head_dim", sizes.get("qk_dim", 64)) ** 0.5), dtype=dtype)
        elif name == "probs":
            t = torch.softmax(torch.randn(shape), dim=-1).to(dtype)
        elif name == "top_k":
            t = torch.full(shape, 5, dtype=dtype)
        elif name == "top_p":
            t = torch.full(shape, 0.9, dtype=dtype)
        elif not dtype.is_floating_point:
            t = torch.randint(0, 4, shape, dtype=dtype)
        else:
            # uniform in [-1, 1), drawn in the declared dtype: large weights stay cheap to make
            t = (torch.rand(shape, dtype=dtype) * 2 - 1) if shape and dtype.itemsize >= 2 else \
                (torch.rand(shape) * 2 - 1).to(dtype) if shape else torch.tensor(1.0).to(dtype)
        out.append(t)
    return out, ""


def definition_model(workspace: str):
    """The repository's own Definition model. Its package __init__ pulls in CUDA-only dependencies, so when
    the plain import fails the data subpackage is loaded from the workspace without running __init__."""
    try:
        from flashinfer_bench.data import Definition
        return Definition
    except Exception:  # noqa: BLE001
        import os
        import types

        root = os.path.join(workspace, "flashinfer_bench")
        if not os.path.isfile(os.path.join(root, "data", "definition.py")):
            raise
        for key in [k for k in sys.modules if k == "flashinfer_bench" or k.startswith("flashinfer_bench.")]:
            del sys.modules[key]
        for name, path in (("flashinfer_bench", root), ("flashinfer_bench.data", os.path.join(root, "data"))):
            mod = types.ModuleType(name)
            mod.__path__ = [path]
            sys.modules[name] = mod
        from flashinfer_bench.data.definition import Definition
        return Definition


def check_definition(defn: dict, workspace: str = ".") -> list[dict]:
    checks = []
    name = defn.get("name", "?")
    try:
        Definition = definition_model(workspace)
    except Exception as exc:  # noqa: BLE001 - any import failure means the schema check cannot run here
        checks.append({"name": f"schema:{name}", "status": "skipped",
                       "detail": f"flashinfer_bench is not importable here: {type(exc).__name__}: {exc}"[:300]})
    else:
        try:
            Definition.model_validate(defn)
            checks.append({"name": f"schema:{name}", "status": "passed", "detail": "flashinfer_bench Definition"})
        except Exception as exc:  # noqa: BLE001
            checks.append({"name": f"schema:{name}", "status": "failed", "detail": str(exc)[:500]})
    import torch

    torch.manual_seed(0)
    start = time.monotonic()
    inputs, why = _inputs(defn, torch)
    if inputs is None:
        checks.append({"name": f"reference:{name}", "status": "skipped", "detail": why})
        return checks
    try:
        scope: dict = {}
        exec(compile(defn["reference"], f"<{name}>", "exec"), scope)  # noqa: S102 - the reference under test
        result = scope["run"](*inputs)
        results = result if isinstance(result, tuple) else (result,)
        bad = [i for i, r in enumerate(results) if r.is_floating_point() and not torch.isfinite(r.float()).all()]
        if len(results) != len(defn["outputs"]):
            raise ValueError(f"run returned {len(results)} outputs, the definition declares {len(defn['outputs'])}")
        if bad:
            raise ValueError(f"non-finite values in output {bad}")
        checks.append({"name": f"reference:{name}", "status": "passed",
                       "detail": f"ran on CPU in {time.monotonic() - start:.2f}s",
                       "metrics": {"shapes": [list(r.shape) for r in results]}})
    except Exception as exc:  # noqa: BLE001
        checks.append({"name": f"reference:{name}", "status": "failed", "detail": f"{type(exc).__name__}: {exc}"[:500]})
    return checks


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    checks = []
    for path in spec.get("definitions", []):
        checks += check_definition(json.loads(open(f"{spec['workspace']}/{path}").read()), spec["workspace"])
    print(json.dumps({"checks": checks, "timings": {}}))


if __name__ == "__main__":
    main(sys.argv[1])
