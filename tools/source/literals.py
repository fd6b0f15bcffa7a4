"""Edits of Python literals (lists, tuples, sets, dicts) in source text, formatting preserved.

`insert_element` adds an element (or a dict entry) where the literal's own order says it belongs,
in the quoting and wrapping the literal already uses; `remove_element` takes one out. Both are
idempotent and refuse to return source that no longer parses (see tools/source_edit.py).
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
from dataclasses import dataclass
from typing import Any

from tools.source.python_edit import Edit, EditError, Src, _checked, _line_end, _line_start, _lines, _newline, _parse, \
    _position, _sort_key

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
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({quote}{value}{quote})"  # repr() gives `inf`/`nan`, which are not Python names
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


# A literal is named by what it is assigned to ("NAME", "Class.NAME"), or, for one written inline (an
# `if x in {...}:`), by where it starts: (line, column) as ast gives them.
Target = str | tuple[int, int]


def _find_literal(tree: ast.Module, target: Target) -> tuple[ast.expr, str]:
    if not isinstance(target, str):
        hits = [n for n in ast.walk(tree) if isinstance(n, (ast.List, ast.Tuple, ast.Set, ast.Dict))
                and (n.lineno, n.col_offset) == tuple(target)]
        if not hits:
            raise LookupError(f"no literal starts at line {target[0]}, column {target[1]}")
        return hits[0], f"the literal at line {target[0]}"
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


def _value_key(element: Any) -> Any:
    if isinstance(element, Src):
        return _elem_key(_parse(element.text.strip(), mode="eval").body)
    return ("v", element)


def _parse_literal(text: str, target: Target) -> _Literal:
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


def literal_keys(text: str, target: Target) -> list[Any]:
    """The elements (dict: keys) of a literal as Python values; Src(text) where not literal."""
    lit = _parse_literal(text, target)
    return [k[1] if k[0] == "v" else Src(text[s:e]) for (s, e), k in zip(lit.items, lit.keys)]


def _quote_style(lit: _Literal, text: str) -> str:
    firsts = [text[s:e].lstrip("rRbBuUfF(")[:1] for s, e in lit.items]
    return "'" if firsts.count("'") > firsts.count('"') else '"'


def insert_element(text: str, target: Target, element: Any, value: Any = None, *, order: str = "auto",
                   after: Any = None) -> Edit:
    """Insert `element` (a dict: key `element` with `value`) into the literal assigned to `target`.

    target: "NAME" (module level, else the single class assigning it), "Class.NAME", or (line, column)
    where an inline literal starts.
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
    if new_key not in _parse_literal(new, lit.label if isinstance(target, str) else target).keys:
        raise EditError(f"inserting into {lit.label} did not take")
    line = new.count("\n", 0, new.find(rendered, lit.open_at)) + 1
    return Edit(True, new, f"inserted {rendered} into {lit.label}", line)


def remove_element(text: str, target: Target, element: Any) -> Edit:
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
