"""Experts without a gate through transformers' own batched experts implementation.

Experts decorated `use_experts_implementation(has_gate=False)` hold `up_proj`/`down_proj` weights of
(experts, out, in) and compute down(act(up(x))) per selected expert (NemotronH's). Their default path loops
over the experts a batch reaches (`.item()`), which a trace freezes to the experts of the dummy input.
optimum-intel's `batched_mm_experts_forward_patched` multiplies a fused gate/up weight, which these
experts do not have; transformers' `batched_mm` implementation, registered in its experts interface,
handles both layouts (`self.has_gate`) with gathers and batched matmuls and no data-dependent control
flow. This pattern gives the model a patcher that selects it while exporting and restores the model's
own choice afterwards.

When the hybrid Mamba2 cache pattern is combined with it, that pattern's patcher (it owns
`_MODEL_PATCHER`) does the same, and this one writes nothing.
"""

from __future__ import annotations

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.moe import (EXPERTS_INTERFACE_SINCE, PATCHER_MODULE, base_patcher,
                                                      experts_classes, patcher_name)

IMPLEMENTATION = "batched_mm"  # transformers.integrations.moe.ALL_EXPERTS_FUNCTIONS
SAVED = "_ov_experts_implementation"
HYBRID = "hybrid_mamba2_cache"  # patterns/ssm_hybrid.py (not imported: it imports this module)


def ungated(model_type: str) -> tuple[str, ...]:
    """The model's experts classes when all use the interface without a gate and without fused weights."""
    found = experts_classes(model_type)
    return tuple(e.name for e in found) if found and all(not e.has_gate and not e.fused for e in found) else ()


def _applies(ctx: PatternContext) -> str | None:
    names = ungated(ctx.model_type)
    if not names:
        return None
    return (f"{', '.join(names)} have no gate: transformers' {IMPLEMENTATION} experts implementation routes them "
            f"with batched matmuls instead of the default per-expert loop a trace freezes")


def enter_source(indent: str = "        ") -> str:
    """Statements of a patcher's __enter__ routing the experts (after the base's __enter__)."""
    return (f"{indent}# the default experts path loops over the experts a batch reaches, which a trace freezes:\n"
            f"{indent}# transformers' {IMPLEMENTATION} implementation handles experts without a gate densely\n"
            f"{indent}self.{SAVED} = self._model.config._experts_implementation\n"
            f'{indent}self._model.set_experts_implementation("{IMPLEMENTATION}")\n')


def exit_source(indent: str = "        ") -> str:
    return f"{indent}self._model.set_experts_implementation(self.{SAVED})\n"


def _edit(ctx: PatternContext) -> PatternEdit:
    names = ungated(ctx.model_type)
    if HYBRID in ctx.selected:
        return PatternEdit(min_transformers=EXPERTS_INTERFACE_SINCE,
                           note=f"the hybrid cache patcher routes {', '.join(names)} through {IMPLEMENTATION}")
    name, base = patcher_name(ctx), base_patcher(ctx)
    source = (f"class {name}({base}):\n"
              f"    # {', '.join(names)}: experts without a gate\n"
              f"    def __enter__(self):\n"
              f"        super().__enter__()\n"
              f"{enter_source()}"
              f"\n"
              f"    def __exit__(self, exc_type, exc_value, traceback):\n"
              f"        super().__exit__(exc_type, exc_value, traceback)\n"
              f"{exit_source()}")
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)],
                       patchers=[PatcherBlock(name=name, after=base, source=source)],
                       min_transformers=EXPERTS_INTERFACE_SINCE,
                       note=f"{name}({base}) routes {', '.join(names)} through {IMPLEMENTATION}")


UNGATED_EXPERTS = Pattern("moe_ungated_batched_mm", "route experts without a gate through transformers' batched_mm "
                          "experts implementation", _applies, _edit)
