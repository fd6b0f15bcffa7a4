"""The decoder tests' transformers reference loaded with eager attention, for one model type.

When verification measured transformers' default attention non-causal for the model (sandboxes/targets/
optimum_intel/cache_probe.causality: changing a prompt's last token moves earlier positions under sdpa, not
under eager), the tests that compare OpenVINO with `AutoModelForCausalLM.from_pretrained(model_id,
**model_kwargs)` set `model_kwargs["attn_implementation"] = "eager"` for that model right before loading it,
as upstream sets gemma2's attention per model there. The loads are found by what they do, not by test name.
"""

from __future__ import annotations

import ast

from tools.source.python_edit import Edit, EditError, _checked


def _loads_reference(node: ast.AST) -> bool:
    """`transformers_model = AutoModelForCausalLM.from_pretrained(..., **model_kwargs)`."""
    if not (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "transformers_model" for t in node.targets)
            and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    return isinstance(func, ast.Attribute) and func.attr == "from_pretrained" \
        and getattr(func.value, "id", "") == "AutoModelForCausalLM" \
        and any(k.arg is None and getattr(k.value, "id", "") == "model_kwargs" for k in node.value.keywords)


def _sets_eager(stmt: ast.stmt, model_type: str) -> bool:
    """`if model_arch == "<model_type>": model_kwargs["attn_implementation"] = "eager"`."""
    test = getattr(stmt, "test", None) if isinstance(stmt, ast.If) else None
    if not (isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Eq)
            and getattr(test.left, "id", "") == "model_arch"
            and getattr(test.comparators[0], "value", None) == model_type):
        return False
    return any(isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Subscript)
               and getattr(s.targets[0].slice, "value", None) == "attn_implementation"
               and getattr(s.value, "value", None) == "eager" for s in stmt.body)


def reference_sites(tree: ast.AST) -> list[tuple[ast.FunctionDef, int]]:
    """(test function, index in its body of the statement that loads the reference), for test functions
    taking model_arch."""
    sites = []
    for fn in ast.walk(tree):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")
                and "model_arch" in [a.arg for a in fn.args.args]):
            continue
        for i, stmt in enumerate(fn.body):
            if any(_loads_reference(n) for n in ast.walk(stmt)):
                sites.append((fn, i))
                break
    return sites


def eager_reference(text: str, model_type: str) -> Edit:
    """model_type's transformers reference loaded with eager attention in every test that compares with one."""
    sites = reference_sites(ast.parse(text))
    if not sites:
        raise EditError("no test loads its transformers reference with AutoModelForCausalLM and **model_kwargs")
    todo = [(fn, i) for fn, i in sites if not any(_sets_eager(s, model_type) for s in fn.body[:i])]
    if not todo:
        return Edit(False, text, f"{model_type}'s reference already loaded with eager attention")
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if text.endswith("\r\n") or "\r\n" in text[:200] else "\n"
    for fn, i in sorted(todo, key=lambda s: s[0].body[s[1]].lineno, reverse=True):  # earlier ones stay put
        stmt = fn.body[i]
        pad = " " * stmt.col_offset
        block = (f"{pad}# transformers' default (sdpa) attention is not causal for {model_type}"
                 f"{newline}{pad}if model_arch == \"{model_type}\":{newline}"
                 f"{pad}    model_kwargs[\"attn_implementation\"] = \"eager\"{newline}")
        lines.insert(stmt.lineno - 1, block)
    what = f"{model_type}'s transformers reference loaded with eager attention in {len(todo)} test(s)"
    return Edit(True, _checked("".join(lines), what), what, todo[0][0].body[todo[0][1]].lineno)
