"""Where every checkpoint element lands after `from_hf`: the MoE state-dict safety check, mechanical.

Each element of the on-disk state dict is replaced by its own number (exact in float32 below 2**24), the
adapter converts that numbered dict, and every native element is decoded back to (checkpoint tensor,
element). The rules then need no knowledge of the adapter's layout:
- nothing dropped, duplicated or invented; dtypes kept;
- a router tensor lands in one native tensor of its own, never in an expert tensor;
- routed expert e of layer L lands in that layer's expert tensors, in slot e of a grouped tensor;
- gate, up and down projections land in native tensors named for them; shared experts in shared ones.
Imports nothing but torch (passed in) and the standard library.
"""

from __future__ import annotations

import re

LIMIT = 2 ** 24  # float32 holds every integer below this exactly
EXPERT = re.compile(r"layers\.(\d+)\..*?\.experts\.(\d+)\.(\w+?)(?:_proj)?\.weight$")
SHARED = re.compile(r"layers\.(\d+)\..*?\.shared_experts?\.(\w+?)(?:_proj)?\.weight$")
ROUTER = re.compile(r"layers\.(\d+)\.mlp\.(gate|router)(\.\w+)*\.(weight|bias|e_score_correction_bias)$")
LAYER = re.compile(r"layers\.(\d+)\.")
# Which native name stands for which projection (grouped experts fuse gate and up).
PROJ_NAMES = {"gate": ("gate",), "up": ("up",), "down": ("down",), "w1": ("gate", "w1"), "w3": ("up", "w3"),
              "w2": ("down", "w2")}


def role(key: str) -> tuple:
    if m := EXPERT.search(key):
        return ("expert", int(m.group(1)), int(m.group(2)), m.group(3))
    if m := SHARED.search(key):
        return ("shared", int(m.group(1)), m.group(2))
    if key.endswith("shared_expert_gate.weight"):
        return ("shared_gate", int(LAYER.search(key).group(1)))
    if m := ROUTER.search(key):
        return ("router", int(m.group(1)))
    return ("other",)


def tag_state_dict(hf_sd: dict, torch):
    """A copy of `hf_sd` whose elements are 0, 1, 2, ... in key order (float32), and the index
    [(key, start, numel, dtype)] to decode them."""
    tagged, index, start = {}, [], 0
    for key in sorted(hf_sd):
        t = hf_sd[key]
        n = t.numel()
        if not t.is_floating_point():
            tagged[key] = t
            continue
        tagged[key] = torch.arange(start, start + n, dtype=torch.float64).to(torch.float32).reshape(t.shape)
        index.append((key, start, n, str(t.dtype)))
        start += n
    if start >= LIMIT:
        raise ValueError(f"{start} elements: too many to number exactly in float32 (use a smaller tiny config)")
    return tagged, index


def _decode(values, starts, torch):
    pos = torch.searchsorted(starts, values, right=True) - 1
    return pos


def check_provenance(tagged: dict, index: list, native: dict, own: dict, torch, n_experts: int) -> dict:
    problems: list[str] = []
    starts = torch.tensor([s for _, s, _, _ in index], dtype=torch.int64)
    seen = torch.zeros(sum(n for _, _, n, _ in index), dtype=torch.int32)
    landed: dict[str, list[tuple[str, int | None]]] = {k: [] for k, _, _, _ in index}
    for nkey, t in native.items():
        if not hasattr(t, "is_floating_point") or not t.is_floating_point():
            continue
        if own.get(nkey) is not None and own[nkey].dtype != t.dtype:
            problems.append(f"{nkey}: dtype {t.dtype} but the model holds {own[nkey].dtype}")
        flat = t.detach().reshape(-1).to(torch.float64)
        if flat.numel() == 0:
            continue
        if not torch.equal(flat, flat.round()) or flat.min() < 0 or flat.max() >= len(seen):
            problems.append(f"{nkey}: holds values no checkpoint element had (converted, cast or invented)")
            continue
        ids = flat.to(torch.int64)
        seen.index_add_(0, ids, torch.ones_like(ids, dtype=torch.int32))
        src = _decode(ids, starts, torch)
        grouped = t.dim() >= 1 and n_experts and t.shape[0] == n_experts and ".experts." in f".{nkey}."
        per_slot = flat.numel() // t.shape[0] if grouped else None
        for s in torch.unique(src).tolist():
            hkey = index[s][0]
            if grouped:
                slots = torch.unique(torch.nonzero(src == s).reshape(-1) // per_slot).tolist()
                for slot in slots:
                    landed[hkey].append((nkey, slot))
            else:
                landed[hkey].append((nkey, None))
    dropped = int((seen == 0).sum())
    duplicated = int((seen > 1).sum())
    if dropped:
        problems.append(f"{dropped} checkpoint elements land nowhere")
    if duplicated:
        problems.append(f"{duplicated} checkpoint elements land twice")
    for hkey, places in landed.items():
        problems += _rules(hkey, role(hkey), places)
    detail = "; ".join(problems[:6]) if problems else f"{len(index)} checkpoint tensors traced to native tensors"
    return {"name": "moe_provenance", "status": "failed" if problems else "passed", "detail": detail,
            "metrics": {"problems": len(problems), "tensors": len(index)}}


def _rules(hkey: str, r: tuple, places: list) -> list[str]:
    names = sorted({n for n, _ in places})
    if not names:
        return []  # counted as dropped already
    kind = r[0]
    if kind == "router":
        if any(".experts." in f".{n}." or "shared_expert" in n for n in names):
            return [f"router {hkey} mapped into expert tensor {names[0]}"]
        if len(names) != 1:
            return [f"router {hkey} split over {names}"]
        return []
    if kind == "expert":
        _, layer, e, proj = r
        out = []
        for n, slot in places:
            if "shared" in n or f"layers.{layer}." not in n or ".experts" not in n:
                out.append(f"expert {hkey} mapped into {n}")
            elif slot is not None and slot != e:
                out.append(f"routed expert {e} of layer {layer} ({hkey}) lands in expert slot {slot} of {n}")
            elif slot is None and f".experts.{e}." not in n:
                out.append(f"routed expert {e} ({hkey}) lands in {n}")
            elif not any(p in n for p in PROJ_NAMES.get(proj, (proj,))):
                out.append(f"{proj} projection {hkey} lands in {n}")
        return out[:2]
    if kind == "shared":
        _, layer, proj = r
        return [f"shared expert {hkey} mapped into {n}" for n in names
                if "shared" not in n or f"layers.{layer}." not in n
                or not any(p in n for p in PROJ_NAMES.get(proj, (proj,)))][:2]
    if kind == "shared_gate":
        return [f"shared-expert gate {hkey} mapped into {n}" for n in names if "shared_expert_gate" not in n]
    return [f"{hkey} mapped into expert tensor {n}" for n in names if ".experts." in f".{n}."][:2]
