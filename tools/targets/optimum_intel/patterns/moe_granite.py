"""Top-k gating and split-by-expert-size experts of GraniteMoe's shape, through optimum-intel's own fixes.

GraniteMoe (and JetMoe, whose MoE and mixture-of-attention-heads blocks share those two classes) routes with a
top-k gating module that turns the tokens per expert into a Python list (`expert_size.tolist()`), and runs its
experts by splitting the grouped inputs with that list. Traced, the list becomes constants of the dummy input:
the graph exports but fails at inference on other lengths. optimum-intel fixes GraniteMoe with two replacement
forwards in model_patcher.py (`_granite_moe_topk_gating_forward` keeps the counts a tensor,
`_granite_moe_parallel_experts_forward` slices by it); its GraniteMoE patcher reaches them through GraniteMoe's
own module tree. This pattern gives the new model a patcher that installs the same two forwards on every module
of the matching classes, wherever they sit (an MoE block, an attention block). No forward is copied.

It applies only when a class's forward is, statement for statement, the forward of GraniteMoe's gating or
parallel-experts class in the installed transformers (the shape the helpers were written for); anything else is
left to a hand-written patch.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs
from tools.targets.optimum_intel.patterns.moe import (PATCHER_MODULE, _modeling, base_patcher, experts_classes,
                                                      patcher_name, swapping_patcher_source)

REFERENCE = "granitemoe"  # the model type whose classes define the known shape
# helper in model_patcher.py -> the GraniteMoe class whose forward it replaces
HELPERS = {"_granite_moe_topk_gating_forward": "GraniteMoeTopKGating",
           "_granite_moe_parallel_experts_forward": "GraniteMoeParallelExperts"}


def _forward(cls: ast.ClassDef) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"), None)


def shape(func: ast.FunctionDef) -> str:
    """The forward's structure: its arguments and statements, without docstrings, names of the function
    or positions (so two classes that differ only in name and comments compare equal)."""
    body = [s for s in func.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    return "\n".join([ast.dump(func.args)] + [ast.dump(s) for s in body])


@lru_cache(maxsize=1)
def known_shapes() -> dict[str, str]:
    """forward shape -> the helper written for it, from the installed transformers' GraniteMoe classes."""
    tree = _modeling(REFERENCE)
    classes = {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}
    out = {}
    for helper, name in HELPERS.items():
        forward = _forward(classes[name]) if name in classes else None
        if forward is not None:
            out[shape(forward)] = helper
    return out


@lru_cache(maxsize=256)
def granite_shaped(model_type: str) -> tuple[tuple[str, str], ...]:
    """(class, helper) for each class of the model's modeling module whose forward has a known shape."""
    return () if model_type == REFERENCE else shaped_in(_modeling(model_type))


def shaped_in(tree: ast.Module | None) -> tuple[tuple[str, str], ...]:
    shapes, out = known_shapes(), []
    for cls in (n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)):
        forward = _forward(cls)
        helper = shapes.get(shape(forward)) if forward is not None else None
        if helper:
            out.append((cls.name, helper))
    return tuple(out)


def _matches(ctx: PatternContext) -> tuple[tuple[str, str], ...]:
    found = granite_shaped(ctx.model_type)
    if {h for _, h in found} != set(HELPERS) or experts_classes(ctx.model_type):
        return ()  # both halves are needed (the gating's counts are what the experts slice by); the experts
        # interface is moe_batched_mm's domain
    defs = module_defs(ctx.workspace, MODEL_PATCHER)
    if not all(isinstance(defs.get(h), ast.FunctionDef) for h in HELPERS):
        return ()
    return found


def _applies(ctx: PatternContext) -> str | None:
    found = _matches(ctx)
    if not found:
        return None
    listed = ", ".join(f"{c} ({HELPERS[h]}'s forward)" for c, h in found)
    return (f"{listed}: the gating hands expert counts to the experts as a Python list, which tracing freezes; "
            f"optimum-intel's {' and '.join(HELPERS)} keep them a tensor")


def patcher_source(name: str, base: str, found: tuple[tuple[str, str], ...]) -> str:
    return swapping_patcher_source(name, base, [
        f"{', '.join(c for c, _ in found)} have GraniteMoe's gating and parallel-experts forwards, whose",
        "expert counts tracing would freeze: the forwards optimum-intel wrote for GraniteMoe replace them."],
        dict(found))


def _edit(ctx: PatternContext) -> PatternEdit:
    name, base, found = patcher_name(ctx), base_patcher(ctx), _matches(ctx)
    block = PatcherBlock(name=name, after=base, source=patcher_source(name, base, found))
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)], patchers=[block],
                       note=f"{name}({base}) installs {', '.join(HELPERS)} on {', '.join(c for c, _ in found)}")


GRANITE_EXPERTS = Pattern("moe_granite_gating", "route GraniteMoe-shaped top-k gating and parallel experts "
                          "through optimum-intel's GraniteMoe forwards", _applies, _edit)
