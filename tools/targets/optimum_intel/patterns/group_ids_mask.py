"""Token-type group masks (Gemma3's `token_type_ids_mask_function`, copied into git, paligemma, gemma4) in OpenVINO.

Such a model builds, at the first iteration, the ids of the image groups of its tokens (`torch.cumsum` of an int32
tensor, -1 for text) and hands transformers' mask builder a mask function that reads them and fills with a literal
-1 (`torch.where(q_idx < seq_length, q_group, -1)`). PyTorch promotes the cumsum to int64; OpenVINO's conversion
keeps it i32, so the Select gets an i32 and an i64 branch and conversion stops ("Argument 1 and 2 element types
must match"). The cached export never reaches the function (a dummy cache is no first iteration); the uncached
"text-generation" export, which the repository's test_export.py runs for every causal LM, does. The pattern gives
the model a patcher that, while exporting, hands the model's mask function its group ids cast to int64 (what
PyTorch computes anyway, so the traced values do not change), and puts the function back afterwards.

It applies when the model's transformers module defines a top-level function of `group_ids` that fills with a
constant through `torch.where` and that the module calls: what the model does, not its name.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.moe import PATCHER_MODULE, _modeling, base_patcher, patcher_name

ARGUMENT = "group_ids"  # the argument transformers' token-type mask functions take
SAVED = "_ov_group_ids_mask_functions"  # where the patcher keeps the module's own functions while exporting


def _fills_with_constant(func: ast.FunctionDef) -> bool:
    """torch.where(cond, x, <int constant>) somewhere in the function (its nested mask function included)."""
    for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
        if ast.unparse(call.func) == "torch.where" and len(call.args) == 3:
            last = call.args[2]
            if isinstance(last, ast.UnaryOp):
                last = last.operand
            if isinstance(last, ast.Constant) and isinstance(last.value, int):
                return True
    return False


@lru_cache(maxsize=256)
def group_ids_mask_functions(model_type: str) -> tuple[str, ...]:
    """Top-level functions of the model's modeling module that take `group_ids` first, fill with an integer
    constant through torch.where, and are called by the module."""
    tree = _modeling(model_type)
    if tree is None:
        return ()
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return tuple(f.name for f in tree.body
                 if isinstance(f, ast.FunctionDef) and f.args.args and f.args.args[0].arg == ARGUMENT
                 and _fills_with_constant(f) and f.name in called)


def _applies(ctx: PatternContext) -> str | None:
    found = group_ids_mask_functions(ctx.model_type)
    if not found:
        return None
    return (f"{', '.join(found)} fills int32 group ids with an int64 -1 through torch.where, which OpenVINO cannot "
            "convert in the uncached export: the patcher casts the ids to int64 while exporting")


def patcher_source(name: str, base: str, functions: tuple[str, ...]) -> str:
    listed = ", ".join(f'"{f}"' for f in functions)
    return f'''\
class {name}({base}):
    # {", ".join(functions)}: the token-type group ids (an int32 cumsum: i32 in OpenVINO, int64 in PyTorch)
    # are filled with an int64 -1 through torch.where, which OpenVINO cannot convert; cast to int64 they convert.
    def __enter__(self):
        super().__enter__()
        module = inspect.getmodule(type(self._model))
        self.{SAVED} = {{}}
        for fn_name in ({listed},):
            original = getattr(module, fn_name, None)
            if original is None:
                continue
            self.{SAVED}[fn_name] = original

            def with_int64_group_ids(group_ids, *args, _original=original, **kwargs):
                return _original(group_ids.to(torch.int64), *args, **kwargs)

            setattr(module, fn_name, with_int64_group_ids)

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        module = inspect.getmodule(type(self._model))
        for fn_name, original in self.__dict__.pop("{SAVED}", {{}}).items():
            setattr(module, fn_name, original)
'''


def _edit(ctx: PatternContext) -> PatternEdit:
    name, base, found = patcher_name(ctx), base_patcher(ctx), group_ids_mask_functions(ctx.model_type)
    block = PatcherBlock(name=name, after=base, source=patcher_source(name, base, found))
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)], patchers=[block],
                       note=f"{name}({base}) casts the group ids {', '.join(found)} reads to int64 while exporting")


GROUP_IDS_MASK = Pattern("group_ids_mask_int64", "cast the token-type group ids a model's mask function fills "
                         "with -1 to int64 while exporting (OpenVINO keeps them i32)", _applies, _edit)
