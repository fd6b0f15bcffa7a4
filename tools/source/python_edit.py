"""Formatting-preserving, AST-guided text edits of Python and markdown sources.

The AST and the tokenizer locate what to change; the change itself is a small text splice, so
comments, quoting, wrapping and blank lines elsewhere stay exactly as the maintainers wrote them
and the diff is minimal. Every edit is idempotent (an edit already made is reported, not redone),
and an edit whose result no longer parses raises instead of returning broken source.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class EditError(ValueError):
    """The requested edit cannot be made safely."""


@dataclass(frozen=True)
class Src:
    """Source text spliced in verbatim (a name, call or expression) rather than a Python value."""

    text: str


@dataclass(frozen=True)
class Edit:
    changed: bool
    text: str
    message: str
    line: int | None = None  # 1-based line of the change


# -- shared helpers ---------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    # "\n" only, like the tokenizer and the AST (str.splitlines also splits on \x0c, \u2028, ...)
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


def _checked(text: str, what: str) -> str:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise EditError(f"{what} would not parse ({exc.msg}, line {exc.lineno}); nothing written") from exc
    return text


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        return (0, value.casefold())
    if isinstance(value, (tuple, list)):
        return (1, tuple(_sort_key(v) for v in value))
    return (2, repr(value))


def _sorted_backbone(keys: list[Any]) -> list[int]:
    """Indices of a longest non-decreasing subsequence of `keys` (quadratic: tables are small)."""
    best: list[int] = []
    prev: list[int] = []
    for i, k in enumerate(keys):
        j = max((j for j in range(i) if keys[j] <= k), key=best.__getitem__, default=-1)
        best.append(best[j] + 1 if j >= 0 else 1)
        prev.append(j)
    out, i = [], max(range(len(keys)), key=best.__getitem__, default=-1)
    while i >= 0:
        out.append(i)
        i = prev[i]
    return out[::-1]


def _position(keys: list[Any], new: Any, order: str, group_end: int) -> int:
    """Where `new` goes among elements with sort keys `keys` (None: not sortable)."""
    n = len(keys)
    if order == "end":
        return n
    if new is None or None in keys:
        return group_end
    backbone = _sorted_backbone(keys)
    # Hand-kept tables are often *nearly* sorted, with a few late additions out of place: follow
    # the sorted backbone there, as a maintainer would. (A random order's longest sorted run is
    # about 2*sqrt(n), so short lists count as sorted only when fully sorted.) Unsorted tables
    # grow at the end of their leading group.
    if order == "sorted" or len(backbone) == n or (n >= 10 and len(backbone) >= 0.6 * n):
        after = [i for i in backbone if keys[i] <= new]
        return after[-1] + 1 if after else backbone[0] if backbone else 0
    return group_end


def _parse(text: str, mode: str = "exec") -> ast.AST:
    try:
        return ast.parse(text, mode=mode)
    except SyntaxError as exc:
        raise EditError(f"not valid Python: {text.strip()[:60]!r} ({exc.msg})") from exc


def _defined_names(body: list[ast.stmt]) -> list[str]:
    names = []
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def top_level_names(text: str) -> set[str]:
    return set(_defined_names(ast.parse(text).body))


def insert_block(text: str, block: str, *, after: str | None = None, before: str | None = None) -> Edit:
    """Insert a top-level class/function after the named top-level class/function, or before the
    named top-level assignment/definition, with two blank lines around it. A no-op when the
    block's first defined name already exists at top level."""
    if (after is None) == (before is None):
        raise EditError("give exactly one of after= / before=")
    block = textwrap.dedent(block).strip("\n")
    names = _defined_names(_parse(block).body)
    if not names:
        raise EditError("the block defines nothing at top level")
    tree = ast.parse(text)
    if names[0] in _defined_names(tree.body):
        return Edit(False, text, f"{names[0]} already defined")
    anchor = after or before
    node = next((nd for nd in tree.body if anchor in _defined_names([nd])), None)
    if node is None:
        raise LookupError(f"top-level {anchor} not found")
    nl, lines = _newline(text), _lines(text)
    block = block.replace("\n", nl)
    if after is not None:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            raise EditError(f"{after} is not a class or function")
        cut = sum(len(x) for x in lines[: node.end_lineno])
        head, tail = text[:cut].rstrip("\r\n"), text[cut:].lstrip("\r\n")
        new = head + nl * 3 + block + nl + (nl * 2 + tail if tail.strip() else "")
    else:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while first > 1 and lines[first - 2].lstrip().startswith("#"):
            first -= 1  # the comment introducing the anchor stays attached to it
        cut = sum(len(x) for x in lines[: first - 1])
        head, tail = text[:cut].rstrip("\r\n"), text[cut:]
        new = (head + nl * 3 if head.strip() else "") + block + nl * 3 + tail
    line = head.count("\n") + 4 if head.strip() else 1
    return Edit(True, _checked(new, f"inserting {names[0]}"), f"inserted {names[0]}", line)


# -- markdown bullet lists --------------------------------------------------------------------

def insert_bullet(text: str, item: str, *, section: str | None = None, order: str = "auto") -> Edit:
    """Add `- item` to the first bullet list under the first heading containing `section`
    (the file's first list when None), keeping a (nearly) sorted list sorted."""
    lines, i, item = _lines(text), 0, item.strip()
    if section is not None:
        i = next((k + 1 for k, ln in enumerate(lines) if ln.lstrip().startswith("#") and section in ln), -1)
        if i < 0:
            raise LookupError(f"no heading containing {section!r}")
    while i < len(lines) and not lines[i].lstrip().startswith(("- ", "* ")):
        if section is not None and lines[i].lstrip().startswith("#"):
            raise LookupError(f"no bullet list under {section!r}")
        i += 1
    if i == len(lines):
        raise LookupError("no bullet list found")
    first, marker = i, lines[i][: len(lines[i]) - len(lines[i].lstrip()) + 2]
    while i < len(lines) and lines[i].startswith(marker):
        i += 1
    entries = [ln[len(marker):].strip() for ln in lines[first:i]]
    if item.casefold() in {e.casefold() for e in entries}:
        return Edit(False, text, f"{item!r} already listed")
    at = first + _position([_sort_key(e) for e in entries], _sort_key(item), order, len(entries))
    nl = _newline(text)
    if at == len(lines) and not lines[-1].endswith("\n"):
        lines[-1] += nl
    lines.insert(at, marker + item + nl)
    return Edit(True, "".join(lines), f"listed {item!r}", at + 1)


# -- files ------------------------------------------------------------------------------------

def edit_file(path: Path, edit: Callable[..., Edit], *args: Any, **kwargs: Any) -> Edit:
    """Apply a text edit to a file (line endings untouched), writing only when it changed."""
    with open(path, encoding="utf-8", newline="") as fh:
        result = edit(fh.read(), *args, **kwargs)
    if result.changed:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(result.text)
    return result
