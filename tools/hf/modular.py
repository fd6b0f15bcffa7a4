"""What transformers' modular file says a model changes relative to its bases."""

from __future__ import annotations

import ast
from pathlib import Path


def modular_file(model_type: str) -> Path | None:
    import transformers

    path = Path(transformers.__file__).parent / "models" / model_type / f"modular_{model_type}.py"
    return path if path.exists() else None


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
