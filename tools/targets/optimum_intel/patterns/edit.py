"""Source edits the patch patterns need beyond tools/source_edit: imports, and class attributes read
through a class hierarchy that spans two workspace modules.

Kept apart from the patterns so each pattern stays a precondition plus a description of its edit.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from tools.source.python_edit import Edit, EditError, _checked

MODEL_CONFIGS = "optimum/exporters/openvino/model_configs.py"
# optimum-intel's own base config classes (TextDecoderOpenVINOConfig, ...) live here
BASE_CONFIGS = "optimum/exporters/openvino/config.py"
MODEL_PATCHER = "optimum/exporters/openvino/model_patcher.py"
INPUT_GENERATORS = "optimum/exporters/openvino/input_generators.py"


def function_name(model_type: str, suffix: str) -> str:
    """A private module-level name for code written for one model type: `_<type>_<suffix>`."""
    return "_" + "".join(c if c.isalnum() else "_" for c in model_type.lower()) + f"_{suffix}"


def insert_import(text: str, module: str, name: str) -> Edit:
    """Make `name` importable from `module` at top level: joined to an existing parenthesised
    `from module import (...)` one name per line in case-insensitive order (as isort leaves upstream's
    lists), else a new `from module import name` line after the module's last top-level import."""
    tree = ast.parse(text)
    froms = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == module and not n.level]
    if any(a.name == name and a.asname is None for n in froms for a in n.names):
        return Edit(False, text, f"{name} already imported from {module}")
    if any(name in {a.asname or a.name for a in n.names} for n in tree.body
           if isinstance(n, (ast.Import, ast.ImportFrom))):
        raise EditError(f"{name} is already imported from elsewhere")
    lines = text.split("\n")  # a CRLF file keeps "\r" at each line's end
    cr = "\r" if "\r\n" in text else ""
    for node in froms:
        rows = [a.lineno for a in node.names]
        if len(set(rows)) != len(rows) or node.lineno in rows or node.end_lineno in rows:
            continue  # several names on a line, or a bracket sharing one: not a one-per-line list
        indent = lines[rows[0] - 1][: len(lines[rows[0] - 1]) - len(lines[rows[0] - 1].lstrip())]
        later = [a for a in node.names if a.name.casefold() > name.casefold()]
        at = later[0].lineno - 1 if later else node.names[-1].lineno
        if not later and not lines[at - 1].rstrip().endswith(","):
            lines[at - 1] = lines[at - 1].rstrip("\r") + "," + cr
        lines.insert(at, f"{indent}{name},{cr}")
        new = _checked("\n".join(lines), f"importing {name}")
        return Edit(True, new, f"imported {name} from {module}", at + 1)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    if not imports:
        raise EditError("the module has no top-level imports to follow")
    anchor = (froms or imports)[-1].end_lineno
    lines.insert(anchor, f"from {module} import {name}{cr}")
    new = _checked("\n".join(lines), f"importing {name}")
    return Edit(True, new, f"imported {name} from {module}", anchor + 1)


@lru_cache(maxsize=16)
def _module_defs(path: str, mtime_ns: int) -> dict[str, ast.ClassDef | ast.FunctionDef]:
    # model_configs.py and model_patcher.py are thousands of lines and every candidate base asks:
    # parse each version of them once
    return {n.name: n for n in ast.parse(Path(path).read_text(encoding="utf-8")).body
            if isinstance(n, (ast.ClassDef, ast.FunctionDef))}


def module_defs(workspace: Path, rel: str) -> dict[str, ast.ClassDef | ast.FunctionDef]:
    """Top-level classes and functions of a workspace module (empty when it is absent)."""
    path = workspace / rel
    return _module_defs(str(path), path.stat().st_mtime_ns) if path.exists() else {}


def module_classes(workspace: Path, rel: str) -> dict[str, ast.ClassDef]:
    return {k: v for k, v in module_defs(workspace, rel).items() if isinstance(v, ast.ClassDef)}


def _classes(workspace: Path) -> dict[str, ast.ClassDef]:
    """Top-level classes of the base-config module and model_configs.py (the latter wins on clashes)."""
    return {**module_classes(workspace, BASE_CONFIGS), **module_classes(workspace, MODEL_CONFIGS)}


def resolved_attrs(workspace: Path, class_name: str, attrs: tuple[str, ...]) -> dict[str, ast.expr]:
    """For each attribute, the expression the nearest class in `class_name`'s hierarchy assigns it
    (method-resolution order approximated by a breadth-first walk of the workspace's classes)."""
    classes, found = _classes(workspace), {}
    todo, seen = [class_name], set()
    while todo:
        cls = classes.get(todo.pop(0))
        if cls is None or cls.name in seen:
            continue
        seen.add(cls.name)
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and t.id in attrs:
                        found.setdefault(t.id, stmt.value)
        todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return found


def max_transformers_version(workspace: Path, class_name: str) -> str | None:
    expr = resolved_attrs(workspace, class_name, ("MAX_TRANSFORMERS_VERSION",)).get("MAX_TRANSFORMERS_VERSION")
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def top_level_classes(workspace: Path, rel: str) -> list[str]:
    return list(module_classes(workspace, rel))


def insert_in_function(text: str, function: str, after_call: str, source: str, marker: str) -> Edit:
    """Insert the statements `source` (written at no indentation) into `function` (a top-level function, or
    `Class.method`), after the statement of its body that calls `after_call` (a compound statement whole: the
    insertion follows an `if` that holds the call), at that statement's indentation. Idempotent: a function
    whose source already holds `marker` is left as it is."""
    tree = ast.parse(text)
    scope, func = tree.body, None
    for part in function.split("."):
        func = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        scope = func.body if func is not None else []
    if not isinstance(func, ast.FunctionDef):
        raise EditError(f"no function {function}")
    lines = text.split("\n")
    if marker in "\n".join(lines[func.lineno - 1:func.end_lineno]):
        return Edit(False, text, f"{function} already holds {marker!r}")
    anchor = next((s for s in func.body if any(
        isinstance(c, ast.Call) and getattr(c.func, "id", getattr(c.func, "attr", None)) == after_call
        for c in ast.walk(s))), None)
    if anchor is None:
        raise EditError(f"{function} has no statement calling {after_call}")
    cr = "\r" if "\r\n" in text else ""
    indent = " " * anchor.col_offset
    block = [f"{indent}{ln}{cr}" if ln.strip() else "" for ln in source.strip("\n").split("\n")]
    lines[anchor.end_lineno:anchor.end_lineno] = block
    new = _checked("\n".join(lines), f"inserting into {function}")
    return Edit(True, new, f"inserted after the {after_call} call in {function}", anchor.end_lineno + 1)
