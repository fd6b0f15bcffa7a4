"""The decoder test's check that a stateful hybrid model returns convolution states.

test_compare_to_transformers asserts, for every state-space / hybrid model, that the cache it returns holds
conv states (`self.assertTrue(len(ov_outputs.cache_params.conv_states) > 0)`), and exempts from the recurrent
state check the models that have none (`if model_arch not in ["lfm2", "lfm2_moe"]:`). A hybrid whose only
state is a recurrent one (lightning attention: patterns/lightning_hybrid.py) has no conv state, so the conv
check gets the same kind of exemption: it is wrapped in `if model_arch not in [...]:` naming the model, or
the model joins such a wrapper's list when one is there. The statement is found by what it asserts.
"""

from __future__ import annotations

import ast

from tools.source.python_edit import Edit, EditError, _checked
from tools.targets.optimum_intel.placement import insert_entry

STATE = "conv_states"


def _is_conv_check(stmt: ast.stmt) -> bool:
    """`self.assertTrue(len(<...>.conv_states) > 0)`."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "assertTrue"
            and len(stmt.value.args) == 1):
        return False
    test = stmt.value.args[0]
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Gt)
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == 0
            and isinstance(test.left, ast.Call) and getattr(test.left.func, "id", None) == "len"
            and len(test.left.args) == 1 and isinstance(test.left.args[0], ast.Attribute)
            and test.left.args[0].attr == STATE)


def _exemption(node: ast.AST) -> ast.expr | None:
    """The literal of `if model_arch not in [...]:` when `node` is such an if holding only a conv check."""
    if not (isinstance(node, ast.If) and not node.orelse and len(node.body) == 1 and _is_conv_check(node.body[0])):
        return None
    test = node.test
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.NotIn)
            and isinstance(test.left, ast.Name) and test.left.id == "model_arch"
            and isinstance(test.comparators[0], (ast.List, ast.Tuple, ast.Set))):
        return test.comparators[0]
    return None


def _wrappers(tree: ast.AST) -> list[ast.expr]:
    return [lit for lit in map(_exemption, ast.walk(tree)) if lit is not None]


def _bare(tree: ast.AST) -> list[ast.stmt]:
    inside = {id(n.body[0]) for n in ast.walk(tree) if _exemption(n) is not None}
    return [s for s in ast.walk(tree) if isinstance(s, ast.stmt) and _is_conv_check(s) and id(s) not in inside]


def exempt_conv_state_check(text: str, model_type: str) -> Edit:
    """Exempt `model_type` from every conv state check of the file (see the module doc)."""
    tree = ast.parse(text)
    bare = _bare(tree)
    if not bare and not _wrappers(tree):
        raise EditError(f"no `assertTrue(len(....{STATE}) > 0)` check")
    lines = text.splitlines(keepends=True)
    for stmt in sorted(bare, key=lambda s: s.lineno, reverse=True):  # later ones first: earlier lines stay put
        first, last = stmt.lineno - 1, stmt.end_lineno
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        body = [f"    {line}" if line.strip() else line for line in lines[first:last]]
        lines[first:last] = [f'{indent}if model_arch not in ["{model_type}"]:\n', *body]
    new = "".join(lines)
    todo = [lit for lit in _wrappers(ast.parse(new)) if model_type not in [getattr(e, "value", None) for e in lit.elts]]
    for lit in sorted(todo, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        new = insert_entry(new, (lit.lineno, lit.col_offset), model_type).text
    if not bare and not todo:
        return Edit(False, text, f"{model_type} already exempt from the {STATE} checks")
    what = f"{model_type} exempt from {len(todo) + len(bare)} {STATE} check(s): its cache holds no conv state"
    first = min([lit.lineno for lit in todo] + [s.lineno for s in bare])
    return Edit(True, _checked(new, what), what, first)
