"""The decoder tests' lists of models whose generation is compared with transformers' use_cache=False.

test_compare_to_transformers (and test_beam_search) compare OpenVINO's generate() with transformers' own;
for models whose transformers cache path departs from the model (remote-code caches, ouro, ...) upstream
keeps them in an inline `elif model_arch in {...}:` whose branch sets use_cache=False. A model joins every
such list only when verification measured that departure (sandboxes/targets/optimum_intel/cache_probe.py):
its cached generate() differs from its own uncached one where no window is involved, and the uncached one
is the model as written. The lists are found by what their branch does, not by name.
"""

from __future__ import annotations

import ast

from tools.source.python_edit import Edit, EditError, _checked
from tools.targets.optimum_intel.placement import insert_entry


def _turns_off_cache(body: list[ast.stmt]) -> bool:
    """`x = {"use_cache": False}` or `x["use_cache"] = False` in the branch."""
    for stmt in body:
        if not isinstance(stmt, ast.Assign):
            continue
        value = stmt.value
        if isinstance(value, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "use_cache" and isinstance(v, ast.Constant)
                and v.value is False for k, v in zip(value.keys, value.values)):
            return True
        if isinstance(value, ast.Constant) and value.value is False and any(
                isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) and t.slice.value == "use_cache"
                for t in stmt.targets):
            return True
    return False


def uncached_lists(tree: ast.AST) -> list[ast.expr]:
    """The literal model lists of `if/elif model_arch in {...}:` branches that turn the cache off."""
    found = []
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)
                and isinstance(test.left, ast.Name) and test.left.id == "model_arch"):
            continue
        lit = test.comparators[0]
        if isinstance(lit, (ast.Set, ast.List, ast.Tuple)) and lit.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in lit.elts) \
                and _turns_off_cache(node.body):
            found.append(lit)
    return found


def join_uncached_generation(text: str, model_type: str) -> Edit:
    """model_type added to every list whose branch compares generation with use_cache=False."""
    lists = uncached_lists(ast.parse(text))
    if not lists:
        raise EditError("no `model_arch in {...}` branch that compares generation with use_cache=False")
    todo = [lit for lit in lists if model_type not in [e.value for e in lit.elts]]
    if not todo:
        return Edit(False, text, f"{model_type} already compared with use_cache=False")
    new = text
    for lit in sorted(todo, key=lambda n: (n.lineno, n.col_offset), reverse=True):  # earlier ones stay put
        new = insert_entry(new, (lit.lineno, lit.col_offset), model_type).text
    what = f"{model_type} compared with use_cache=False in {len(todo)} generation test(s)"
    return Edit(True, _checked(new, what), what, todo[0].lineno)
