"""How aiconfigurator's history reads: a new `"Arch": "FAMILY"` line in common.py is an onboarding.

A reference's "type" is `Arch:FAMILY` (the family travels with the architecture, so ranking needs no
checkout): its kind is the family's layer mix, its bases the transformers model types whose causal-LM or
image-text class is that architecture, with their modular lineage.
"""

from __future__ import annotations

import re
from functools import lru_cache

from unidiff import PatchSet

ENTRY = re.compile(r"^\s*\"(\w+)\":\s*\"([A-Z][A-Z0-9_]*)\",?\s*(#.*)?$")
CLASS = re.compile(r"^class (\w+)\(")
BRANCH = re.compile(r"^\s*(?:el)?if architecture (?:==|in) (.+):\s*$")
# The family's layer mix in the analysis' words (tools.hf.config kinds), for "same family kind".
FAMILY_KIND = {"GPT": "dense", "LLAMA": "dense", "NEMOTRONNAS": "dense", "MOE": "moe", "DEEPSEEK": "mla",
               "DEEPSEEKV32": "mla", "DEEPSEEKV4": "mla", "KIMIK25": "vlm", "KIMIK3": "hybrid", "QWEN35": "hybrid",
               "QWEN3VL": "vlm", "QWEN3VL_MOE": "vlm", "HYBRIDMOE": "hybrid", "GEMMA4MIX": "hybrid",
               "NEMOTRONH": "hybrid", "MINIMAXM3": "moe", "STEP3P7": "hybrid"}


class AIConfiguratorReferences:
    registry_files = ("aic-core/src/aiconfigurator_core/sdk/common.py", "src/aiconfigurator/sdk/common.py")

    def __init__(self):
        # The model facts that rank references (family kind, the families it is built from).
        self.kind_of, self.base_of = kind_of, base_of

    def added_types(self, added: list[str], removed: list[str]) -> list[str]:
        # A move between files (the core/application split) removes the line it adds: not an onboarding.
        gone = {m.group(1) for ln in removed if (m := ENTRY.match(ln))}
        return sorted({f"{m.group(1)}:{m.group(2)}" for ln in added if (m := ENTRY.match(ln))
                       and m.group(1) not in gone and "For" in m.group(1)})

    def classify(self, path: str) -> str:
        if path.startswith("tests/"):
            return "tests"
        if path.startswith("docs/") or path.endswith(".md"):
            return "docs"
        if "/model_configs/" in path:
            return "model_config"
        if path.endswith("sdk/common.py"):
            return "registration"
        if path.endswith("sdk/utils.py"):
            return "parser"
        if "/sdk/models/" in path or path.endswith("sdk/models.py"):
            return "model_class"
        if "/sdk/backends/" in path:
            return "backend"
        if "/systems/" in path or path.startswith("collector/"):
            return "perf_data"
        return "other"

    def patterns(self, patch: PatchSet) -> dict:
        out: dict = {"families": [], "parser_branches": [], "model_classes": [], "model_configs": [], "tests": []}
        for f in patch:
            added = [ln.value.rstrip("\n") for h in f for ln in h if ln.is_added]
            kind = self.classify(f.path)
            if kind == "registration":
                out["families"] += [f"{m.group(1)} → {m.group(2)}" for ln in added if (m := ENTRY.match(ln))
                                    and "For" in m.group(1)]
            elif kind == "parser":
                out["parser_branches"] += [m.group(1) for ln in added if (m := BRANCH.match(ln))]
            elif kind == "model_class":
                out["model_classes"] += [m.group(1) for ln in added if (m := CLASS.match(ln))]
            elif kind == "model_config" and f.is_added_file:
                out["model_configs"].append(f.path.rsplit("/", 1)[-1])
            elif kind == "tests":
                out["tests"].append(f.path)
        return out


def kind_of(typ: str) -> str:
    return FAMILY_KIND.get(typ.partition(":")[2], "unknown")


@lru_cache(maxsize=512)
def base_of(typ: str) -> tuple[str, ...]:
    """The transformers model types whose class is this architecture, and their modular lineage, followed
    one step further (Qwen3.5 is built from Qwen3-Next, which is built from Qwen3-MoE)."""
    arch = typ.partition(":")[0]
    try:
        from transformers.models.auto import modeling_auto as ma

        from tools.hf.modular import modular_lineage
    except ImportError:  # pragma: no cover - transformers is a dependency of the host
        return ()
    types = [t for name in ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES")
             for t, cls in getattr(ma, name, {}).items() if arch == cls or (not isinstance(cls, str) and arch in cls)]
    out: list[str] = []
    for t in types:
        direct = modular_lineage(t)
        for b in [t, *direct, *(x for d in direct for x in modular_lineage(d))]:
            if b not in out:
                out.append(b)
    return tuple(out)
