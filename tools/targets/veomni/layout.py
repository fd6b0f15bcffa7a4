"""What a VeOmni checkout holds: its model packages, their registry keys, and the closest one to follow.

Read from the workspace's files (never an installed veomni): `veomni/models/transformers/<pkg>/__init__.py`
registers `MODELING_REGISTRY` keys, `<pkg>_gpu_patch_gen_config.py` names the Hugging Face module it
patches, `parallel_plan.py` marks an MoE package, `tests/toy_config/*/config.json` are the toy configs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MODELS = "veomni/models/transformers"
TOYS = "tests/toy_config"
_REGISTER = re.compile(r"MODELING_REGISTRY\.register\(\s*[\"']([A-Za-z0-9_.\-]+)[\"']\s*\)")
_SOURCE = re.compile(r"source_module\s*=\s*[\"']transformers\.models\.(\w+)\.modeling_(\w+)[\"']")
_CLASS = re.compile(r"^class (\w+)\(", re.M)
# Multimodal and diffusion packages patch several HF modules at once: never a base for a text model.
NOT_TEXT = re.compile(r"vl|omni|janus|wan|flux|movqgan|qwen_image|dit")


@dataclass
class Package:
    name: str
    keys: list[str]
    config: str | None = None  # workspace-relative GPU patch config
    family: str | None = None  # transformers.models.<family>
    moe: bool = False
    toy: str | None = None  # workspace-relative toy config dir
    extras: list[str] = field(default_factory=list)  # other files (converters, ...)
    toy_keys: list[str] = field(default_factory=list)  # the toy config's fields


def packages(ws: Path) -> dict[str, Package]:
    root = ws / MODELS
    toys = toy_configs(ws)
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()) if root.is_dir() else []:
        keys = _REGISTER.findall((d / "__init__.py").read_text(errors="replace"))
        cfgs = sorted(d.glob("*_gpu_patch_gen_config.py"))
        family = None
        if cfgs:
            m = _SOURCE.search(cfgs[0].read_text(errors="replace"))
            family = m.group(1) if m else None
        toy = next((toys[k] for k in keys if k in toys), None)
        extras = sorted(p.name for p in d.glob("*.py") if p.name not in ("__init__.py", "parallel_plan.py")
                        and "patch_gen_config" not in p.name)
        toy_keys = list(json.loads((ws / toy / "config.json").read_text())) if toy else []
        out[d.name] = Package(d.name, keys, str(cfgs[0].relative_to(ws)) if cfgs else None, family,
                              (d / "parallel_plan.py").is_file(), toy, extras, toy_keys)
    return out


def toy_configs(ws: Path) -> dict[str, str]:
    """model_type -> toy config dir (the first by name, when several share a type)."""
    out: dict[str, str] = {}
    for cfg in sorted((ws / TOYS).glob("*/config.json")):
        try:
            mt = json.loads(cfg.read_text()).get("model_type")
        except (ValueError, OSError):
            continue
        if isinstance(mt, str):
            out.setdefault(mt, str(cfg.parent.relative_to(ws)))
    return out


def registered(ws: Path) -> set[str]:
    return {k for p in packages(ws).values() for k in p.keys}


def class_suffixes(source: str, prefix: str) -> set[str]:
    """A modeling file's classes without the model's prefix: its module structure (RMSNorm, Experts, ...)."""
    return {c[len(prefix):] for c in _CLASS.findall(source) if c.startswith(prefix)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


@dataclass
class Choice:
    package: Package
    reasons: list[str]
    ranking: list[tuple[str, tuple]]


def choose_base(analysis: dict, pkgs: dict[str, Package], hf_source, prefix_of) -> Choice | None:
    """The closest text package: same kind (MoE or dense), then earliest in the transformers lineage,
    then most shared module classes, then most shared config fields.

    `hf_source(family)` returns a transformers modeling file's text (or ""), `prefix_of(family)` its
    class prefix; both injected so tests run on fixture sources."""
    moe = "moe" in analysis.get("features", [])
    lineage = analysis.get("lineage") or []
    mt = analysis["model_type"]
    new_classes = class_suffixes(hf_source(mt), prefix_of(mt))
    new_keys = set((analysis.get("raw_text_config") or {}).keys())
    ranked = []
    for p in pkgs.values():
        if not p.config or not p.family or NOT_TEXT.search(p.name) or mt in p.keys:
            continue
        pos = lineage.index(p.family) if p.family in lineage else len(lineage) + 1
        classes = jaccard(new_classes, class_suffixes(hf_source(p.family), prefix_of(p.family)))
        keys = jaccard(new_keys, set(p.toy_keys)) if p.toy_keys else 0.0
        ranked.append((p.name, (p.moe != moe, pos, -round(classes, 3), -round(keys, 3), p.name)))
    if not ranked:
        return None
    ranked.sort(key=lambda r: r[1])
    best = pkgs[ranked[0][0]]
    mism, pos, cls, keys, _ = ranked[0][1]
    reasons = [f"{'MoE' if best.moe else 'dense'} package for a {'MoE' if moe else 'dense'} model"]
    reasons.append(f"transformers lineage {lineage} names {best.family}" if pos <= len(lineage)
                   else f"no VeOmni package in the lineage {lineage or '(none)'}")
    reasons.append(f"module classes shared {-cls:.2f}, config fields shared {-keys:.2f}")
    return Choice(best, reasons, ranked[:5])
