"""Formatting-preserving, AST-guided text edits of Python and markdown sources.

The AST and the tokenizer locate what to change; the change itself is a small text splice, so
comments, quoting, wrapping and blank lines elsewhere stay exactly as the maintainers wrote them
and the diff is minimal. Every edit is idempotent (an edit already made is reported, not redone),
and an edit whose result no longer parses raises instead of returning broken source.
"""

from __future__ import annotations

import ast
import io
import textwrap
import tokenize
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


def render(value: Any, quote: str = '"') -> str:
    """Python source for a literal value in the file's quote style."""
    if isinstance(value, Src):
        return value.text
    if isinstance(value, str):
        return f"{quote}{value}{quote}" if not set(value) & {quote, "\\", "\n"} else repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(render(v, quote) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(render(v, quote) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(k, quote)}: {render(v, quote)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise EditError(f"cannot render {type(value).__name__} as a literal; pass Src(...)")


# -- literals (tuple / list / set / dict) -----------------------------------------------------

@dataclass
class _Literal:
    node: ast.expr
    label: str
    items: list[tuple[int, int]]  # char offsets (start, end) of each element
    commas: list[int | None]  # offset of the comma after each element
    open_at: int
    close_at: int
    keys: list[Any]  # ("v", value) for literal elements, ("a", ast dump) otherwise
    comment_before: list[bool]  # a comment line introduces the element (a section)


def _literal_in(body: list[ast.stmt], name: str) -> ast.expr | None:
    # the first literal wins: a later `X = tuple(x for x in X if ...)` filter is not the table
    for stmt in (s for s in body if isinstance(s, (ast.Assign, ast.AnnAssign))):  # not `+=`
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and isinstance(
                stmt.value, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
            return stmt.value
    return None


def _find_literal(tree: ast.Module, target: str) -> tuple[ast.expr, str]:
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if "." in target:
        cls_name, name = target.split(".", 1)
        hits = [(target, _literal_in(classes[cls_name].body, name))] if cls_name in classes else []
    else:
        hits = [(target, _literal_in(tree.body, target))]
        if hits[0][1] is None:
            hits = [(f"{c}.{target}", _literal_in(cls.body, target)) for c, cls in classes.items()]
    hits = [(label, node) for label, node in hits if node is not None]
    if len(hits) != 1:
        where = f" ({', '.join(label for label, _ in hits)}); qualify it" if hits else ""
        raise LookupError(f"{'several' if hits else 'no'} literal(s) assigned to {target}{where}")
    return hits[0][1], hits[0][0]


def _elem_key(node: ast.expr | None) -> Any:
    try:
        return ("v", ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return ("a", ast.dump(node) if node is not None else None)


def _parse(text: str, mode: str = "exec") -> ast.AST:
    try:
        return ast.parse(text, mode=mode)
    except SyntaxError as exc:
        raise EditError(f"not valid Python: {text.strip()[:60]!r} ({exc.msg})") from exc


def _value_key(element: Any) -> Any:
    if isinstance(element, Src):
        return _elem_key(_parse(element.text.strip(), mode="eval").body)
    return ("v", element)


def _parse_literal(text: str, target: str) -> _Literal:
    node, label = _find_literal(ast.parse(text), target)
    lines = _lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    open_col = len(lines[node.lineno - 1].encode()[: node.col_offset].decode(errors="ignore"))  # bytes -> chars
    open_at = starts[node.lineno - 1] + open_col
    if text[open_at] not in "([{":
        raise EditError(f"{label} is not a bracketed literal")
    # Commas at bracket depth 1 delimit the elements, whatever parentheses or comments they carry.
    depth, items, commas, close_at = 0, [], [], None
    cur: list[int] = []
    pending, comment_before = False, []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        pos = starts[tok.start[0] - 1] + tok.start[1]
        if pos < open_at or tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
            if depth == 1:
                continue
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
            if depth == 0:
                close_at = pos
                break
        if depth == 1 and tok.string == "," and tok.type == tokenize.OP:
            items.append((cur[0], cur[1]))
            commas.append(pos)
            cur = []
        elif tok.type == tokenize.COMMENT:
            pending |= depth == 1 and not cur and not text[starts[tok.start[0] - 1]:pos].strip()
        else:
            if not cur:
                cur = [pos, 0]
                comment_before.append(pending)
                pending = False
            cur[1] = starts[tok.end[0] - 1] + tok.end[1]
    if close_at is None:
        raise EditError(f"unterminated literal {label}")
    if cur:
        items.append((cur[0], cur[1]))
        commas.append(None)
    elems = list(node.keys) if isinstance(node, ast.Dict) else list(node.elts)
    if len(elems) != len(items):
        raise EditError(f"could not delimit the elements of {label}")
    return _Literal(node, label, items, commas, open_at, close_at, [_elem_key(e) for e in elems], comment_before)


def literal_keys(text: str, target: str) -> list[Any]:
    """The elements (dict: keys) of a literal as Python values; Src(text) where not literal."""
    lit = _parse_literal(text, target)
    return [k[1] if k[0] == "v" else Src(text[s:e]) for (s, e), k in zip(lit.items, lit.keys)]


def _quote_style(lit: _Literal, text: str) -> str:
    firsts = [text[s:e].lstrip("rRbBuUfF(")[:1] for s, e in lit.items]
    return "'" if firsts.count("'") > firsts.count('"') else '"'


def insert_element(text: str, target: str, element: Any, value: Any = None, *, order: str = "auto",
                   after: Any = None) -> Edit:
    """Insert `element` (a dict: key `element` with `value`) into the literal assigned to `target`.

    target: "NAME" (module level, else the single class assigning it) or "Class.NAME".
    order: "auto" keeps a (nearly) sorted literal sorted, otherwise appends to the end of the
    leading group (before the first comment-introduced section); "sorted"; "end".
    after: an existing element to insert right after (overrides `order`).
    Elements and values are Python values, or Src("source") for names and expressions.
    """
    lit = _parse_literal(text, target)
    is_dict = isinstance(lit.node, ast.Dict)
    if is_dict == (value is None):
        raise EditError(f"{lit.label}: a value is {'required' if is_dict else 'only for dicts'}")
    new_key = _value_key(element)
    if new_key in lit.keys:
        return Edit(False, text, f"{render(element)} already in {lit.label}")
    quote = _quote_style(lit, text)
    rendered = render(element, quote) + (f": {render(value, quote)}" if is_dict else "")
    n = len(lit.items)
    if after is not None:
        if _value_key(after) not in lit.keys:
            raise EditError(f"anchor {render(after)} not in {lit.label}")
        index = lit.keys.index(_value_key(after)) + 1
    else:
        sort_keys = [_sort_key(k[1]) if k[0] == "v" else None for k in lit.keys]
        group_end = next((i for i in range(1, n) if lit.comment_before[i]), n)
        index = _position(sort_keys, _sort_key(new_key[1]) if new_key[0] == "v" else None, order, group_end)
    nl = _newline(text)
    multiline = "\n" in text[lit.open_at:lit.close_at]
    trailing = n > 0 and lit.commas[-1] is not None
    if n == 0:
        indent = nl + " " * (lit.close_at - _line_start(text, lit.close_at) + 4) if multiline else ""
        one = "," if multiline or isinstance(lit.node, ast.Tuple) else ""
        new = text[:lit.open_at + 1] + indent + rendered + one + text[lit.open_at + 1:]
    elif index < n:
        s = lit.items[index][0]
        prev = lit.commas[index - 1] if index else lit.open_at
        if not multiline or _line_start(text, s) <= prev:  # shares its line with what precedes it
            new = text[:s] + rendered + ", " + text[s:]
        else:
            at = _line_start(text, s)
            while at > 0:  # comment lines introducing the element stay attached to it
                above = _line_start(text, at - 1)
                if above <= prev or not text[above:at].strip().startswith("#"):
                    break
                at = above
            indent = " " * (lit.items[0][0] - _line_start(text, lit.items[0][0]))
            new = text[:at] + indent + rendered + "," + nl + text[at:]
    elif not multiline:
        e = lit.items[-1][1]
        new = text[:e] + ", " + rendered + text[lit.close_at if trailing else e:]  # `(a,)` -> `(a, b)`
    else:
        e, comma = lit.items[-1][1], lit.commas[-1]
        base = text if trailing else text[:e] + "," + text[e:]
        anchor = comma if trailing else e
        cut = _line_end(base, anchor)
        if cut > lit.close_at + (0 if trailing else 1):  # the closer shares the last element's line
            cut = anchor + 1
        indent = " " * (lit.items[0][0] - _line_start(text, lit.items[0][0]))
        new = base[:cut] + nl + indent + rendered + ("," if trailing else "") + base[cut:]
    new = _checked(new, f"inserting into {lit.label}")
    if new_key not in _parse_literal(new, lit.label).keys:
        raise EditError(f"inserting into {lit.label} did not take")
    line = new.count("\n", 0, new.find(rendered, lit.open_at)) + 1
    return Edit(True, new, f"inserted {rendered} into {lit.label}", line)


def remove_element(text: str, target: str, element: Any) -> Edit:
    """Remove one element (a dict: the entry with that key) from the literal assigned to `target`."""
    lit = _parse_literal(text, target)
    key = _value_key(element)
    if key not in lit.keys:
        return Edit(False, text, f"{render(element)} not in {lit.label}")
    i = lit.keys.index(key)
    (s, e), comma, n = lit.items[i], lit.commas[i], len(lit.items)
    ls, end = _line_start(text, s), (comma + 1 if comma is not None else e)
    eol = _line_end(text, end)
    prev = lit.commas[i - 1] if i else lit.open_at
    nxt = lit.items[i + 1][0] if i + 1 < n else lit.close_at
    rest = text[end:eol].strip()
    if n == 1 and isinstance(lit.node, ast.Set):  # `{}` would be a dict
        new = text[:lit.open_at] + "set()" + text[lit.close_at + 1:]
    elif not text[ls:s].strip() and ls > prev and (not rest or rest.startswith("#")) and nxt > eol:
        nl_at = text.find("\n", eol)  # alone on its line(s): drop them, with its comment
        new = text[:ls] + text[len(text) if nl_at < 0 else nl_at + 1:]
    elif i + 1 < n:
        new = text[:s] + text[nxt:]
    else:  # last of several on a line: drop the comma before it, keep any trailing comma
        new = text[:prev] + text[e:] if i else text[:s] + text[lit.close_at:]
    new = _checked(new, f"removing from {lit.label}")
    return Edit(True, new, f"removed {render(element)} from {lit.label}", text.count("\n", 0, s) + 1)


# -- top-level blocks -------------------------------------------------------------------------

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
