"""Our own Definition templates for the simple op families, used when the dataset has no sibling to copy.

Each returns a complete Definition (axes, inputs, outputs, a PyTorch reference) in the dataset's own
conventions, so a model whose family is new to the dataset still gets files a CPU run can prove.
"""

from __future__ import annotations


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
