"""The models.ts entry for one model: id and display name, module tree with kernel names, description.

Everything comes from our config analysis and the SGLang module tree, under one TP/EP setting.
"""

from __future__ import annotations

from tools.targets.flashinfer_bench import model as fbm
from tools.targets.flashinfer_bench.names import definitions_for


def _params(a: dict, active: bool) -> float:
    h, v = a.get("hidden_size") or 0, a.get("vocab_size") or 0
    q, kv, d = a.get("num_attention_heads") or 0, a.get("num_key_value_heads") or 0, a.get("head_dim") or 0
    counts = fbm.layer_counts(a)
    attn = 2 * h * q * d + 2 * h * kv * d
    dense = 3 * h * (a.get("intermediate_size") or 0)
    moe = a.get("moe") or {}
    per_expert = 3 * h * (moe.get("moe_intermediate_size") or 0)
    experts = (moe.get("top_k") or 0) if active else (moe.get("num_experts") or 0)
    sparse = per_expert * (experts + (moe.get("num_shared_experts") or 0)) + h * (moe.get("num_experts") or 0)
    embed = v * h * (1 if a.get("tie_word_embeddings") else 2)
    return counts["layers"] * attn + counts["dense"] * dense + counts["moe"] * sparse + embed


def model_id(a: dict) -> tuple[str, str]:
    """(id, display name) from the config alone: family plus parameter count, e.g. llama-8b, qwen3-moe-30b-a3b.

    The Hub name of the checkpoint is not part of the analysis the graph hands a target.
    """
    total = f"{round(_params(a, False) / 1e9)}b"
    size = total + (f"-a{round(_params(a, True) / 1e9)}b" if a.get("moe") else "")
    family = a["model_type"].replace("_", "-")
    try:
        from transformers.models.auto.configuration_auto import MODEL_NAMES_MAPPING
        display = MODEL_NAMES_MAPPING.get(a["model_type"], family)
    except ImportError:  # pragma: no cover
        display = family
    return f"{family}-{size}", f"{display} {size.upper().replace('-', ' ')}"


def architecture_label(a: dict) -> str:
    attn = "MLA" if a.get("mla") else "GQA"
    counts = fbm.layer_counts(a)
    ffn = "Dense" if not counts["moe"] else ("MoE" if not counts["dense"] else "Dense/MoE")
    return f"{attn} + {ffn}"


def build_entry(index: dict, a: dict, p: fbm.Parallel) -> tuple[dict, str, list[fbm.Module]]:
    """(entry, SGLang module file, modules) for analysis `a`."""
    arch = (a.get("architectures") or [""])[0]
    module, mods = fbm.build_tree(index, arch, fbm.layer_counts(a))
    mods = fbm.prune_for_config(mods, a)
    for m in mods:
        m.definitions = definitions_for(m, a, p) if m.type == "layer" else []
    ident, name = model_id(a)
    entry = {"id": ident, "name": name,
             "description": f"{name} ({architecture_label(a)}, {fbm.layer_counts(a)['layers']} layers), "
                            f"kernels at TP={p.tp}, EP={p.ep}.",
             "modules": {}}
    for m in mods:
        body = {"count": m.count, "type": m.type, "definitions": m.definitions}
        if m.parent:
            body["parent"] = m.parent
        entry["modules"][m.name] = body
    return entry, module, mods


def referenced(entry: dict) -> list[str]:
    seen: list[str] = []
    for mod in entry["modules"].values():
        seen += [d for d in mod.get("definitions", []) if d not in seen]
    return seen


def sampling_names(a: dict) -> list[str]:
    v = a.get("vocab_size")
    return [f"{k}_sampling_from_probs_v{v}" for k in ("top_k", "top_k_top_p", "top_p")] if v else []
