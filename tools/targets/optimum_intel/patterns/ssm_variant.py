"""Mixers that compute GraniteMoeHybrid's mixer with a few written variants, and the recurrent form for them.

A Mamba-2 mixer may wrap the family's computation in pointwise steps that the family's recurrent form
(`granite_moe_hybrid_mamba_mixer_forward`) does not take: its input scaled by a module attribute before a
projection (`x = x * self.ssm_in_multiplier` before `self.in_proj(x)`), the projection's output scaled after it
(`p = p * self.mup_vector`), or a module call made optional by a flag with a written fallback
(`if self.mamba_rms_norm: s = self.norm(y, gate) else: s = y * silu(gate)`). These three forms are recognised
on the cache-free path and taken out (`strip`); a mixer whose remaining path is the family's then gets a copy
of the family's recurrent form with the same steps put back at the same places (`variant_helper`). Anything
else differing is no variant: the mixer is not the family's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Literal

Place = Literal["before", "after", "optional"]


@dataclass(frozen=True)
class Variant:
    place: Place
    module: str  # the `self.<module>(...)` call the step sits around
    attr: str  # the scale (`self.<attr>`) or the flag (`if self.<attr>:`)
    fallback: str = ""  # "optional": the fallback expression, over the call's argument names
    names: tuple[str, ...] = ()  # "optional": the call's argument names, as the mixer spells them


def _self_attr(node) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _scale(stmt) -> tuple[str, str] | None:
    """`n = n * self.a` -> (n, a)."""
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.BinOp) and isinstance(stmt.value.op, ast.Mult)
            and isinstance(stmt.value.left, ast.Name) and stmt.value.left.id == stmt.targets[0].id
            and (attr := _self_attr(stmt.value.right))):
        return stmt.targets[0].id, attr
    return None


def _module_call(node) -> ast.Call | None:
    return node if isinstance(node, ast.Call) and _self_attr(node.func) else None


def _calls(stmt) -> list[ast.Call]:
    return [c for n in ast.walk(stmt) if (c := _module_call(n)) is not None]


def _assigned_call(stmt) -> tuple[str, ast.Call] | None:
    """`n = self.m(...)` -> (n, the call)."""
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and (call := _module_call(stmt.value))):
        return stmt.targets[0].id, call
    return None


def _optional(stmt) -> tuple[ast.stmt, Variant] | None:
    """`if self.f: n = self.m(a, b) else: n = <expr of a, b>` -> (the call statement, the variant)."""
    if not (isinstance(stmt, ast.If) and (flag := _self_attr(stmt.test)) and len(stmt.body) == 1
            and len(stmt.orelse) == 1 and (called := _assigned_call(stmt.body[0]))):
        return None
    target, call = called
    other = stmt.orelse[0]
    if not (isinstance(other, ast.Assign) and len(other.targets) == 1
            and getattr(other.targets[0], "id", None) == target):
        return None
    args = [a.id for a in call.args if isinstance(a, ast.Name)]
    if len(args) != len(call.args) or call.keywords:
        return None
    read = {n.id for n in ast.walk(other.value) if isinstance(n, ast.Name)}
    if not read <= set(args) | {"torch"} or any(_module_call(n) for n in ast.walk(other.value)):
        return None  # a fallback reading anything but the call's arguments is not a pointwise replacement
    return stmt.body[0], Variant("optional", _self_attr(call.func), flag, ast.unparse(other.value), tuple(args))


def strip(body: list[ast.stmt]) -> tuple[list[ast.stmt], tuple[Variant, ...]]:
    """The cache-free path without the variant steps, and those steps (module doc)."""
    out, found = [], []
    for i, stmt in enumerate(body):
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (scaled := _scale(stmt)) is not None:
            name, attr = scaled
            before = [c for c in _calls(nxt) if c.args and getattr(c.args[0], "id", None) == name] if nxt else []
            prev = _assigned_call(out[-1]) if out else None
            if len(before) == 1:
                found.append(Variant("before", _self_attr(before[0].func), attr))
                continue
            if prev is not None and prev[0] == name:
                found.append(Variant("after", _self_attr(prev[1].func), attr))
                continue
        if (optional := _optional(stmt)) is not None:
            out.append(optional[0])
            found.append(optional[1])
            continue
        out.append(stmt)
    return out, tuple(found)


class _Names(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self.names.get(node.id, node.id), ctx=node.ctx), node)


def variant_helper(helper: ast.FunctionDef, source: str, name: str, variants: tuple[Variant, ...]) -> str | None:
    """The family's recurrent form (`helper`, read from `source`) renamed `name`, with the variant steps at
    the places the mixer has them; None when the recurrent form has no such place."""
    lines = source.splitlines()
    body = helper.body
    edits: list[tuple[int, int, list[str]]] = []  # (first line, last line (1-based, inclusive), new lines)
    for v in variants:
        for stmt in body:
            indent = " " * stmt.col_offset
            if v.place == "before":
                calls = [c for c in _calls(stmt) if _self_attr(c.func) == v.module and c.args
                         and isinstance(c.args[0], ast.Name)]
                if calls:
                    arg = calls[0].args[0].id
                    edits.append((stmt.lineno, stmt.lineno - 1, [f"{indent}{arg} = {arg} * self.{v.attr}"]))
                    break
            elif (called := _assigned_call(stmt)) is not None and _self_attr(called[1].func) == v.module:
                target, call = called
                if v.place == "after":
                    edits.append((stmt.end_lineno + 1, stmt.end_lineno, [f"{indent}{target} = {target} * self.{v.attr}"]))
                    break
                args = [a.id for a in call.args if isinstance(a, ast.Name)]
                if len(args) != len(v.names):
                    return None
                fallback = ast.unparse(_Names(dict(zip(v.names, args))).visit(ast.parse(v.fallback, mode="eval")))
                edits.append((stmt.lineno, stmt.end_lineno, [
                    f"{indent}if self.{v.attr}:", *[f"    {line}" for line in lines[stmt.lineno - 1:stmt.end_lineno]],
                    f"{indent}else:", f"{indent}    {target} = {fallback.strip()}"]))
                break
        else:
            return None
    first = helper.decorator_list[0].lineno if helper.decorator_list else helper.lineno
    text = lines[first - 1:helper.end_lineno]
    for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
        text[start - first:end - first + 1] = new  # an insertion has end = start - 1
    text[helper.lineno - first] = text[helper.lineno - first].replace(f"def {helper.name}(", f"def {name}(", 1)
    return "\n".join(text) + "\n"

