"""How optimum-intel's history reads: registrations, file kinds, patterns of a change."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from unidiff import PatchSet

REGISTRATION = re.compile(r"@register_in_tasks_manager\(\s*[\"']([^\"']+)[\"']")
CLASS = re.compile(r"^class (\w+)\(([^)]*)\):")
ATTR = re.compile(r"^\s{4}([A-Z][A-Z0-9_]+)\s*=\s*(.+?)\s*$")
QUOTED = re.compile(r"^\s*[\"']([\w\-.]+)[\"'],?\s*$")


class OptimumIntelReferences:
    registry_files = ("optimum/exporters/openvino/model_configs.py",)

    def __init__(self):
        # The model facts that rank references (family kind, the families it is built from).
        self.kind_of, self.base_of = kind_of, base_of

    def added_types(self, added: list[str], removed: list[str]) -> list[str]:
        # A decorator that was only re-wrapped or given more tasks is not a new model.
        new = REGISTRATION.findall("\n".join(added))
        old = set(REGISTRATION.findall("\n".join(removed)))
        return sorted({t for t in new if t not in old})

    def classify(self, path: str) -> str:
        if path.startswith(".github/workflows/"):
            return "ci"
        if path.startswith("docs/"):
            return "docs"
        if path.startswith("tests/"):
            return "tests"
        if path.endswith("exporters/openvino/model_configs.py") or path.endswith("exporters/openvino/utils.py"):
            return "registration"
        if path.endswith("model_patcher.py"):
            return "patcher"
        if "input_generator" in path or path.endswith("exporters/openvino/dummy_inputs.py"):
            return "input_generators"
        if path.startswith("optimum/intel/openvino/"):
            return "runtime"
        return "other"

    def patterns(self, patch: PatchSet) -> dict:
        out: dict = {"config_classes": [], "patchers": [], "tests": {}, "docs": [], "onnx_removed": []}
        for f in patch:
            added = [ln.value.rstrip("\n") for h in f for ln in h if ln.is_added]
            removed = [ln.value.rstrip("\n") for h in f for ln in h if ln.is_removed]
            kind = self.classify(f.path)
            if f.path.endswith("model_configs.py"):
                out["config_classes"] += _classes(added)
            elif kind == "patcher":
                out["patchers"] += [m.group(1) for ln in added if (m := CLASS.match(ln))]
                out["patchers"] += [ln[4:].split("(")[0] for ln in added if ln.startswith("def ")]
            elif f.path.endswith("exporters/openvino/utils.py"):
                out["onnx_removed"] += [m.group(1) for ln in removed if (m := QUOTED.match(ln))]
            elif kind == "tests":
                out["tests"][f.path] = [ln.strip() for ln in added if ln.strip()][:6]
            elif kind == "docs":
                out["docs"] += [ln.strip() for ln in added if ln.strip().startswith("- ")]
        return out


def _classes(added: list[str]) -> list[dict]:
    classes, current = [], None
    for ln in added:
        m = CLASS.match(ln)
        if m:
            current = {"name": m.group(1), "bases": [b.strip() for b in m.group(2).split(",") if b.strip()],
                       "attributes": {}}
            classes.append(current)
        elif current is not None and (a := ATTR.match(ln)):
            current["attributes"][a.group(1)] = a.group(2)[:120]
        elif ln and not ln.startswith((" ", "\t", "#")):
            current = None
    return classes


@lru_cache(maxsize=512)
def kind_of(model_type: str) -> str:
    from transformers import AutoConfig

    from tools.hf.config import analyze

    try:
        return analyze(AutoConfig.for_model(model_type).to_dict()).kind
    except Exception:  # types transformers cannot build offline are simply unknown
        return "unknown"


@lru_cache(maxsize=512)
def base_of(model_type: str) -> tuple[str, ...]:
    from tools.hf.modular import modular_lineage

    try:
        return tuple(modular_lineage(model_type))
    except Exception:
        return ()


def _facts_cache_key() -> str:
    # The answers depend on the installed transformers and on how tools.hf.config reads a
    # config (tools/hf/config.py, modular.py); either changing must invalidate the on-disk cache tools.repo.references keeps.
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        tf = version("transformers")
    except PackageNotFoundError:
        tf = "none"
    h = hashlib.sha256()
    for name in ("config.py", "modular.py"):  # analysis and lineage both decide the answers
        src = Path(__file__).resolve().parents[2] / "hf" / name
        h.update(src.read_bytes() if src.exists() else b"none")
    return f"transformers-{tf}-hf-{h.hexdigest()[:10]}"


kind_of.cache_key = base_of.cache_key = _facts_cache_key()
