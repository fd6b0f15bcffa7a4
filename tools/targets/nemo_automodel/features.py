"""What an architecture is made of, read from the config and from transformers' modeling source.

The config says dense, MoE or VLM; it does not say whether attention normalises q and k per head or
which projections carry a bias (Qwen3-MoE's qk-norm has no config field). Those facts come from the
`modeling_<type>.py` that transformers ships, each with the source line that proves it, so a plan can
hand the implementer the evidence rather than a guess.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

Kind = str  # "dense" | "moe" | "vlm"
EXPERT_FIELDS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def classify(raw: dict) -> Kind:
    """VLM: vision_config + text_config + a ForConditionalGeneration class; MoE: expert fields; else dense."""
    archs = raw.get("architectures") or []
    if "vision_config" in raw and "text_config" in raw and any("ForConditionalGeneration" in a for a in archs):
        return "vlm"
    text = raw.get("text_config") or raw
    if any(text.get(f) for f in EXPERT_FIELDS) or text.get("num_experts_per_tok"):
        return "moe"
    return "dense"


def modeling_source(model_type: str) -> str | None:
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    module = model_type.replace("-", "_")
    path = Path(spec.submodule_search_locations[0]) / "models" / module / f"modeling_{module}.py"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _line(src: str, pattern: str) -> str | None:
    m = re.search(pattern, src)
    if not m:
        return None
    start = src.rfind("\n", 0, m.start()) + 1
    end = src.find("\n", m.end())
    return src[start:end if end != -1 else None].strip()


def _bias(src: str, proj: str) -> tuple[str, str | None]:
    """The bias argument of `self.<proj> = nn.Linear(...)` as written ("False" when absent)."""
    m = re.search(rf"self\.{proj}\s*=\s*nn\.Linear\((.*?)\)\n", src, re.S)
    if not m:
        return "unknown", None
    b = re.search(r"bias\s*=\s*([\w.]+)", m.group(1))
    return (b.group(1) if b else "False"), m.group(0).strip()


def structure(model_type: str) -> dict[str, tuple[object, str]]:
    """feature -> (value, evidence line from transformers' modeling source). Empty if no source."""
    src = modeling_source(model_type)
    if src is None:
        return {}
    out: dict[str, tuple[object, str]] = {}
    qn = _line(src, r"self\.q_norm\s*=")
    out["qk_norm"] = (qn is not None, qn or "no self.q_norm in the attention")
    for proj in ("q_proj", "o_proj"):
        value, ev = _bias(src, proj)
        out[f"{proj}_bias"] = (value.replace("config.", ""), ev or f"no {proj} Linear found")
    shared = re.search(r"self\.(shared_experts?)\s*=", src)
    out["shared_expert"] = (shared.group(1) if shared else None,
                            _line(src, r"self\.shared_experts?\s*=") or "no shared expert")
    gate = _line(src, r"sigmoid\(self\.shared_expert_gate")
    out["shared_expert_gate"] = ("sigmoid" if gate else None, gate or "no shared_expert_gate")
    softmax_first = _line(src, r"softmax\(router_logits")
    out["router"] = ("softmax_topk" if softmax_first else "other",
                     softmax_first or (_line(src, r"router_logits") or "no router_logits"))
    linear = _line(src, r"self\.linear_attn\s*=")
    out["linear_attention"] = (linear is not None, linear or "no linear-attention mixer")
    gated = _line(src, r"\*\s*torch\.sigmoid\(gate")
    out["attn_output_gate"] = (gated is not None, gated or "no gate on the attention output")
    sliding = _line(src, r"sliding_attention")
    out["sliding_window_layers"] = (sliding is not None, sliding or "no sliding_attention layers")
    return out


def differences(new: dict, base: dict) -> dict[str, tuple[object, object, str]]:
    """feature -> (base value, new value, evidence of the new model) where they differ."""
    return {k: (base.get(k, (None, ""))[0], v, ev) for k, (v, ev) in new.items()
            if base.get(k, (None, ""))[0] != v}
