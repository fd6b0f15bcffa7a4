"""Grouped-GEMM experts (Aria's shape) through optimum-intel's batched-matmul experts forward.

Some MoE experts keep no per-expert modules: two grouped-GEMM layers hold (experts, in, out) weights and a
forward sorts tokens by expert, counts them (`torch.histc`, which OpenVINO does not convert) and multiplies
slice by slice. The computation is the one `batched_mm_experts_forward_patched` (model_patcher.py) performs
densely for transformers' experts interface: gated up projection, down projection, routing weights. This
pattern gives such a model a forward that keeps the module's own routing method and hands the two weights to
that helper (transposed layout), so the only new code is the mapping of names.

It applies only where the experts class has exactly the known structure: a `route_tokens_to_experts` method
giving (indices, weights); `fc1`/`fc2` built from a class whose weight is `torch.empty(groups, in, out)`; a
forward that takes (hidden_states, router_logits), chunks fc1's output in two, multiplies one half by an
activation of the other and sums fc2's outputs weighted by the routing weights. Anything else is left to a
hand-written patch.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from pydantic import BaseModel

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, function_name, module_defs
from tools.targets.optimum_intel.patterns.moe import (HELPER, PATCHER_MODULE, UPSTREAM_FORWARD, _modeling,
                                                      base_patcher, experts_classes, patcher_name,
                                                      swapping_patcher_source)

ROUTE = "route_tokens_to_experts"
# how an activation is spelled in a modeling module -> how model_patcher.py (which imports torch) reaches it
ACT_PREFIXES = {"nn.functional.": "torch.nn.functional.", "F.": "torch.nn.functional.", "torch.": "torch.",
                "self.": "self."}


class GroupedExperts(BaseModel):
    name: str  # the experts class
    gemm: str  # the grouped-GEMM class of fc1 and fc2
    activation: str  # as model_patcher.py spells it
    act_on: int  # which half of fc1's output the activation takes (0: the first)


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def _params(func: ast.FunctionDef) -> list[str]:
    return [a.arg for a in func.args.args[1:]]


def transposed_gemm(cls: ast.ClassDef) -> bool:
    """`self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))`, in __init__(in, out, groups)."""
    init = _method(cls, "__init__")
    if init is None:
        return False
    params = _params(init)
    for node in ast.walk(init):
        if not (isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "weight"
                                                     for t in node.targets)):
            continue
        call = node.value
        inner = call.args[0] if isinstance(call, ast.Call) and call.args else None
        if isinstance(inner, ast.Call) and ast.unparse(inner.func) in ("torch.empty", "torch.zeros") \
                and len(inner.args) == 3 and all(isinstance(a, ast.Name) for a in inner.args):
            groups, first, second = (a.id for a in inner.args)
            return len(params) == 3 and {groups, first, second} == set(params) \
                and "in" in first and "out" in second and groups not in (first, second)
    return False


def _assigned_classes(init: ast.FunctionDef) -> dict[str, str]:
    """self.<attr> -> the class called to build it, in __init__."""
    out = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Name):
            for t in node.targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    out[t.attr] = node.value.func.id
    return out


def _gate(forward: ast.FunctionDef) -> tuple[str, int] | None:
    """(activation, index of the half it takes) for `a, b = chunk(x, 2, dim=-1)` then `act(a) * b`."""
    halves = None
    for node in ast.walk(forward):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) \
                and len(node.targets[0].elts) == 2 and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func).endswith("chunk") and "2" in [ast.unparse(a) for a in node.value.args]:
            halves = [e.id for e in node.targets[0].elts if isinstance(e, ast.Name)]
    if not halves or len(halves) != 2:
        return None
    for node in ast.walk(forward):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for act, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(act, ast.Call) and len(act.args) == 1 and isinstance(act.args[0], ast.Name) \
                        and isinstance(other, ast.Name) and {act.args[0].id, other.id} == set(halves):
                    spelled = ast.unparse(act.func)
                    prefix = next((p for p in ACT_PREFIXES if spelled.startswith(p)), None)
                    if prefix is not None:
                        return ACT_PREFIXES[prefix] + spelled[len(prefix):], halves.index(act.args[0].id)
    return None


def _weighted_sum(forward: ast.FunctionDef, weights: str) -> bool:
    """The forward multiplies by the routing weights and sums (over the top-k slots)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "sum"
               and isinstance(n.func.value, ast.BinOp) and isinstance(n.func.value.op, ast.Mult)
               and weights in ast.unparse(n.func.value) for n in ast.walk(forward))


def _grouped(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> GroupedExperts | None:
    init, forward, route = _method(cls, "__init__"), _method(cls, "forward"), _method(cls, ROUTE)
    if init is None or forward is None or route is None or len(_params(forward)) != 2:
        return None
    built = _assigned_classes(init)
    gemm = built.get("fc1")
    if gemm is None or built.get("fc2") != gemm or gemm not in classes or not transposed_gemm(classes[gemm]):
        return None
    routed = next((n for n in forward.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                   and ast.unparse(n.value.func) == f"self.{ROUTE}"), None)
    if routed is None or not isinstance(routed.targets[0], ast.Tuple) or len(routed.targets[0].elts) != 2:
        return None
    weights = ast.unparse(routed.targets[0].elts[1])
    calls = {ast.unparse(n.func) for n in ast.walk(forward) if isinstance(n, ast.Call)}
    gate = _gate(forward)
    if not {"self.fc1", "self.fc2"} <= calls or gate is None or not _weighted_sum(forward, weights):
        return None
    return GroupedExperts(name=cls.name, gemm=gemm, activation=gate[0], act_on=gate[1])


def grouped_in(tree: ast.Module | None) -> tuple[GroupedExperts, ...]:
    """The experts classes of a modeling module that have the known grouped-GEMM structure."""
    classes = {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}
    return tuple(g for g in (_grouped(c, classes) for c in classes.values()) if g is not None)


@lru_cache(maxsize=256)
def grouped_experts(model_type: str) -> tuple[GroupedExperts, ...]:
    return grouped_in(_modeling(model_type))


def _matches(ctx: PatternContext) -> tuple[GroupedExperts, ...]:
    found = grouped_experts(ctx.model_type)
    defs = module_defs(ctx.workspace, MODEL_PATCHER)
    if not found or experts_classes(ctx.model_type) or not isinstance(defs.get(UPSTREAM_FORWARD), ast.FunctionDef):
        return ()
    return found


def _applies(ctx: PatternContext) -> str | None:
    found = _matches(ctx)
    if not found:
        return None
    listed = ", ".join(f"{g.name} ({g.gemm} fc1/fc2)" for g in found)
    return (f"{listed}: grouped-GEMM experts count tokens per expert with ops OpenVINO does not convert; a forward "
            f"keeping the module's {ROUTE} hands fc1/fc2's weights to {UPSTREAM_FORWARD}")


def forward_name(model_type: str) -> str:
    return function_name(model_type, "experts_forward_patched")


def forward_source(name: str, g: GroupedExperts) -> str:
    first, second = ("gate", "up") if g.act_on == 0 else ("up", "gate")
    return (f"def {name}(self, hidden_states, router_logits):\n"
            f"    # {g.name}: the module's own routing, then {UPSTREAM_FORWARD} with fc1/fc2's\n"
            f"    # (experts, in, out) weights as its transposed gate_up/down projections.\n"
            f"    top_k_index, top_k_weights = self.{ROUTE}(router_logits)\n\n"
            f"    def apply_gate(gate_up):\n"
            f"        {first}, {second} = gate_up.chunk(2, dim=-1)\n"
            f"        return {g.activation}(gate) * up\n\n"
            f"    experts = types.SimpleNamespace(\n"
            f"        gate_up_proj=self.fc1.weight,\n"
            f"        down_proj=self.fc2.weight,\n"
            f"        is_transposed=True,\n"
            f"        has_bias=False,\n"
            f"        _apply_gate=apply_gate,\n"
            f"    )\n"
            f"    return {UPSTREAM_FORWARD}(\n"
            f"        experts, hidden_states, top_k_index, top_k_weights.to(hidden_states.dtype)\n"
            f"    ).reshape(hidden_states.shape)\n")


def patcher_source(name: str, base: str, found: tuple[GroupedExperts, ...], forward: str) -> str:
    return swapping_patcher_source(name, base, [
        f"{', '.join(g.name for g in found)}: grouped-GEMM experts whose token counting does not convert;",
        f"{forward} runs them through {UPSTREAM_FORWARD}."], {g.name: forward for g in found})


def _edit(ctx: PatternContext) -> PatternEdit:
    found = _matches(ctx)
    if len({(g.activation, g.act_on) for g in found}) != 1:
        raise ValueError(f"experts classes of {ctx.model_type} gate differently: {found}")
    name, base, forward = patcher_name(ctx), base_patcher(ctx), forward_name(ctx.model_type)
    blocks = [PatcherBlock(name=forward, after=HELPER, source=forward_source(forward, found[0])),
              PatcherBlock(name=name, after=base, source=patcher_source(name, base, found, forward))]
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)], patchers=blocks,
                       note=f"{name}({base}) routes {', '.join(g.name for g in found)} through {forward}, "
                            f"which calls {UPSTREAM_FORWARD}")


GROUPED_GEMM = Pattern("moe_grouped_gemm_batched", "run grouped-GEMM experts (fc1/fc2 of (experts, in, out) "
                       "weights) through the batched-matmul experts forward", _applies, _edit)
