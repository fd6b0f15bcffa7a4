"""Fused experts with zero-computation ("identity") slots (LongCat-Flash's shape), run densely for the export.

Some MoE experts modules route over more slots than they hold weights for: the router scores `real + extra`
slots, `gate_up_proj` has a row block per slot, `down_proj` only one per real expert, and a slot index at or
above the number of real experts passes the token's hidden state through (an `nn.Identity`), weighted. Their
forward loops over the experts the batch reached (`for expert_idx in expert_hit`), so tracing keeps only the
experts the dummy input happened to reach. optimum-intel's `batched_mm_experts_forward_patched` does not fit:
it counts experts from `gate_up_proj` (all slots) while `down_proj` has the real ones, and it needs attributes
the `use_experts_implementation` decorator sets, which these classes lack. This pattern gives such a model a
forward that runs every real expert on every token and weights each by the routing mass it got (zero where
not chosen), adds the identity slots' weighted pass-through, and installs it on the module during export.

It applies only where the experts class has exactly that structure, read from the installed transformers'
modeling source: `forward(hidden_states, top_k_index, top_k_weights)`; a one-hot of the indices over
`self.<total>` slots; fused `gate_up_proj`/`down_proj` parameters applied with `F.linear` to one expert's
rows (the (experts, out, in) layout); `a, b = ....chunk(2, dim=-1)` then `act(a) * b`; and a branch
`expert_idx >= self.<real>` that calls an `nn.Identity` module. Anything else is left to a hand-written patch.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from pydantic import BaseModel

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, function_name, module_defs
from tools.targets.optimum_intel.patterns.moe import (HELPER, PATCHER_MODULE, _modeling, base_patcher,
                                                      experts_classes, patcher_name, swapping_patcher_source)
from tools.targets.optimum_intel.patterns.moe_grouped import _gate, _method, _params

PARAMS = ["hidden_states", "top_k_index", "top_k_weights"]


class IdentityExperts(BaseModel):
    name: str  # the experts class
    total: str  # attribute holding the number of routed slots (real + identity)
    real: str  # attribute holding the number of real experts
    activation: str  # as model_patcher.py spells it
    act_on: int  # which half of gate_up_proj's output the activation takes (0: the first)


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _identity_modules(init: ast.FunctionDef) -> set[str]:
    """self.<attr> assigned an `nn.Identity()` in __init__."""
    return {t.attr for n in ast.walk(init) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and ast.unparse(n.value.func) in ("nn.Identity", "torch.nn.Identity")
            for t in n.targets if _self_attr(t)}


def _parameters(init: ast.FunctionDef) -> set[str]:
    """self.<attr> assigned an `nn.Parameter(...)` in __init__."""
    return {t.attr for n in ast.walk(init) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and ast.unparse(n.value.func) in ("nn.Parameter", "torch.nn.Parameter")
            for t in n.targets if _self_attr(t)}


def _one_hot_slots(forward: ast.FunctionDef) -> str | None:
    """The attribute a one-hot of top_k_index counts slots with (`num_classes=self.<total>`)."""
    for n in ast.walk(forward):
        if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("one_hot") and n.args \
                and ast.unparse(n.args[0]) == "top_k_index":
            classes = next((k.value for k in n.keywords if k.arg == "num_classes"), None)
            if classes is None and len(n.args) > 1:
                classes = n.args[1]
            return _self_attr(classes) if classes is not None else None
    return None


def _identity_branch(forward: ast.FunctionDef, identities: set[str]) -> str | None:
    """The attribute of `if expert_idx >= self.<real> ...:` whose body calls an identity module."""
    for n in ast.walk(forward):
        if not isinstance(n, ast.If):
            continue
        body_calls = {_self_attr(c.func) for s in n.body for c in ast.walk(s) if isinstance(c, ast.Call)}
        if not body_calls & identities:
            continue
        for cmp in ast.walk(n.test):
            if isinstance(cmp, ast.Compare) and len(cmp.ops) == 1 and isinstance(cmp.ops[0], ast.GtE):
                real = _self_attr(cmp.comparators[0])
                if real is not None:
                    return real
    return None


def _linear_on_rows(forward: ast.FunctionDef, weight: str) -> bool:
    """`F.linear(x, self.<weight>[index])`: one expert's (out, in) rows."""
    return any(isinstance(n, ast.Call) and ast.unparse(n.func).endswith("linear") and len(n.args) == 2
               and isinstance(n.args[1], ast.Subscript) and _self_attr(n.args[1].value) == weight
               for n in ast.walk(forward))


def _identity_experts(cls: ast.ClassDef) -> IdentityExperts | None:
    init, forward = _method(cls, "__init__"), _method(cls, "forward")
    if init is None or forward is None or _params(forward) != PARAMS:
        return None
    if not {"gate_up_proj", "down_proj"} <= _parameters(init):
        return None
    total, real = _one_hot_slots(forward), _identity_branch(forward, _identity_modules(init))
    gate = _gate(forward)
    if total is None or real is None or total == real or gate is None:
        return None
    if not (_linear_on_rows(forward, "gate_up_proj") and _linear_on_rows(forward, "down_proj")):
        return None
    return IdentityExperts(name=cls.name, total=total, real=real, activation=gate[0], act_on=gate[1])


def identity_in(tree: ast.Module | None) -> tuple[IdentityExperts, ...]:
    """The experts classes of a modeling module that have the known fused-with-identity-slots structure."""
    classes = [n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)]
    return tuple(e for e in (_identity_experts(c) for c in classes) if e is not None)


@lru_cache(maxsize=256)
def identity_experts(model_type: str) -> tuple[IdentityExperts, ...]:
    return identity_in(_modeling(model_type))


def _matches(ctx: PatternContext) -> tuple[IdentityExperts, ...]:
    found = identity_experts(ctx.model_type)
    if not found or experts_classes(ctx.model_type):
        return ()  # the experts interface is moe_batched_mm's domain
    if not isinstance(module_defs(ctx.workspace, MODEL_PATCHER).get(HELPER), ast.FunctionDef):
        return ()  # the forward is placed next to optimum-intel's own experts helpers
    return found


def _applies(ctx: PatternContext) -> str | None:
    found = _matches(ctx)
    if not found:
        return None
    listed = ", ".join(f"{e.name} (self.{e.real} real of self.{e.total} slots)" for e in found)
    return (f"{listed}: experts looped over the slots the batch reached, the rest pass the hidden state through; "
            f"tracing would keep only the experts the dummy input reached, so a dense forward replaces it")


def forward_name(model_type: str) -> str:
    return function_name(model_type, "identity_experts_forward")


def forward_source(name: str, e: IdentityExperts) -> str:
    first, second = ("gate", "up") if e.act_on == 0 else ("up", "gate")
    return (f"def {name}(self, hidden_states, top_k_index, top_k_weights):\n"
            f"    # {e.name}: every real expert runs on every token, weighted by the routing mass it got\n"
            f"    # (zero where not chosen), so the traced graph holds all of them; slots from self.{e.real}\n"
            f"    # on pass the hidden state through, weighted.\n"
            f"    slots = torch.arange(self.{e.total}, device=top_k_index.device)\n"
            f"    chosen = (top_k_index.unsqueeze(-1) == slots).to(top_k_weights.dtype)\n"
            f"    routing = (chosen * top_k_weights.unsqueeze(-1)).sum(dim=1)  # (tokens, slots)\n"
            f"    real = self.{e.real}\n"
            f"    out = hidden_states * routing[:, real:].sum(dim=-1, keepdim=True).to(hidden_states.dtype)\n"
            f"    if real == 0 or self.gate_up_proj is None:\n"
            f"        return out\n"
            f"    gate_up = torch.einsum(\"th,eoh->eto\", hidden_states, self.gate_up_proj[:real])\n"
            f"    {first}, {second} = gate_up.chunk(2, dim=-1)\n"
            f"    expert_out = torch.einsum(\"eti,ehi->eth\", {e.activation}(gate) * up, self.down_proj[:real])\n"
            f"    weights = routing[:, :real].transpose(0, 1).unsqueeze(-1).to(expert_out.dtype)\n"
            f"    return out + (expert_out * weights).sum(dim=0).to(hidden_states.dtype)\n")


def patcher_source(name: str, base: str, found: tuple[IdentityExperts, ...], forward: str) -> str:
    return swapping_patcher_source(name, base, [
        f"{', '.join(e.name for e in found)}: experts with identity slots, looped over the experts the batch",
        f"reached; {forward} runs every real expert densely so tracing keeps all of them."],
        {e.name: forward for e in found})


def _edit(ctx: PatternContext) -> PatternEdit:
    found = _matches(ctx)
    if len({(e.total, e.real, e.activation, e.act_on) for e in found}) != 1:
        raise ValueError(f"identity-slot experts classes of {ctx.model_type} differ: {found}")
    name, base, forward = patcher_name(ctx), base_patcher(ctx), forward_name(ctx.model_type)
    blocks = [PatcherBlock(name=forward, after=HELPER, source=forward_source(forward, found[0])),
              PatcherBlock(name=name, after=base, source=patcher_source(name, base, found, forward))]
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)], patchers=blocks,
                       note=f"{name}({base}) runs {', '.join(e.name for e in found)} through {forward} "
                            f"(dense real experts plus weighted identity slots)")


IDENTITY_EXPERTS = Pattern("moe_identity_experts_dense", "run fused experts with identity (zero-computation) "
                           "slots densely, so tracing keeps every real expert", _applies, _edit)
