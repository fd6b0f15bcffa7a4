"""What transformers' modular file says about a model: the families it is built from, and the classes it
changes relative to them."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

_LINEAGE = re.compile(r"from\s+\.\.([A-Za-z0-9_]+)\.(?:modeling|configuration)_([A-Za-z0-9_]+)\s+import")


def modular_file(model_type: str) -> Path | None:
    import transformers
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    # The directory is the module name: bert-generation lives in models/bert_generation.
    module = model_type_to_module_name(model_type)
    path = Path(transformers.__file__).parent / "models" / module / f"modular_{module}.py"
    return path if path.is_file() else None


@lru_cache(maxsize=1024)
def _lineage(model_type: str) -> tuple[str, ...]:
    path = modular_file(model_type)
    if path is None:
        return ()
    module = path.parent.name
    seen: list[str] = []
    for family, _ in _LINEAGE.findall(path.read_text()):
        if family not in (module, "auto") and family not in seen:
            seen.append(family)
    return tuple(seen)


def modular_lineage(model_type: str) -> list[str]:
    """Families named by transformers' modular file for `model_type`, in order of first appearance."""
    return list(_lineage(model_type))


def redefined_classes(model_type: str) -> list[tuple[str, list[str]]]:
    """Classes the modular file defines with a body of their own (not a bare rename)."""
    path = modular_file(model_type)
    if path is None:
        return []
    out = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef) or node.name.endswith(("Config", "PreTrainedModel")):
            continue
        body = [n for n in node.body if not isinstance(n, (ast.Pass, ast.Expr))]
        if any(isinstance(n, ast.FunctionDef) for n in body):
            out.append((node.name, [ast.unparse(b) for b in node.bases]))
    return out
