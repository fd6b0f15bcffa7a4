"""MoE experts through optimum-intel's batched-matmul route.

transformers 5 dispatches fused-expert modules (those decorated with `use_experts_implementation`) through
its experts interface; the default path gathers tokens per expert with ops OpenVINO cannot convert.
optimum-intel registers an OpenVINO-friendly implementation of that interface with
`register_ov_batched_mm` (model_patcher.py), which GptOss's patcher calls. This pattern gives the new model a
patcher that calls the same helper, so no expert code is copied. It only fits experts the helper can run:
fused `gate_up_proj`/`down_proj` weights with a gate (`has_gate=False` experts are another shape).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from tools.targets.optimum_intel.patch import PatcherBlock, config_class_name
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs, top_level_classes

HELPER = "register_ov_batched_mm"
PATCHER_MODULE = "optimum.exporters.openvino.model_patcher"
FALLBACK_PATCHER = "OVDecoderModelPatcher"
# transformers' experts interface (use_experts_implementation, ALL_EXPERTS_FUNCTIONS) arrived with 5.0; the
# model's experts may have joined it later, which only the installed version's verification shows
EXPERTS_INTERFACE_SINCE = "5.0.0"
HYBRID_MAMBA1 = "hybrid_mamba1_cache"  # patterns/ssm_mamba1.py, which imports this module


class ExpertsClass(BaseModel):
    name: str
    has_gate: bool = True
    fused: bool = False  # assigns self.gate_up_proj: the layout the batched route multiplies


@lru_cache(maxsize=256)
def _modeling(model_type: str) -> ast.Module | None:
    import transformers
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    module = model_type_to_module_name(model_type)
    path = Path(transformers.__file__).parent / "models" / module / f"modeling_{module}.py"
    return ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else None


@lru_cache(maxsize=256)
def experts_classes(model_type: str) -> tuple[ExpertsClass, ...]:
    """Classes of the model's transformers modeling module that use the experts interface."""
    tree = _modeling(model_type)
    if tree is None:
        return ()
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            func = deco.func if isinstance(deco, ast.Call) else deco
            if getattr(func, "id", getattr(func, "attr", "")) != "use_experts_implementation":
                continue
            kwargs = {k.arg: k.value for k in getattr(deco, "keywords", [])}
            gate = kwargs.get("has_gate")
            fused = any(isinstance(n, ast.Attribute) and n.attr == "gate_up_proj" and isinstance(n.ctx, ast.Store)
                        for n in ast.walk(node))
            found.append(ExpertsClass(name=node.name, fused=fused,
                                      has_gate=not (isinstance(gate, ast.Constant) and gate.value is False)))
    return tuple(found)


@lru_cache(maxsize=256)
def blocks_combining_flat_output(model_type: str) -> tuple[str, ...]:
    """MoE blocks whose forward combines `self.experts(...)`'s result with another tensor before reshaping it
    (e.g. adding the shared experts' output): they rely on the interface's (tokens, hidden) shape."""
    tree, out = _modeling(model_type), []
    for cls in (n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)):
        forward = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"), None)
        if forward is None:
            continue
        flat = {t.id for a in ast.walk(forward) if isinstance(a, ast.Assign) and _calls_experts(a.value)
                for t in a.targets if isinstance(t, ast.Name)}
        if any(isinstance(b, ast.BinOp) and any(isinstance(o, ast.Name) and o.id in flat for o in (b.left, b.right))
               for b in ast.walk(forward)):
            out.append(cls.name)
    return tuple(out)


def _calls_experts(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "experts" \
        and isinstance(value.func.value, ast.Name) and value.func.value.id == "self"


def _helper_defined(ctx: PatternContext) -> bool:
    return isinstance(module_defs(ctx.workspace, MODEL_PATCHER).get(HELPER), ast.FunctionDef)


def _applies(ctx: PatternContext) -> str | None:
    experts = experts_classes(ctx.model_type)
    if not experts or not _helper_defined(ctx):
        return None
    unfit = [e.name for e in experts if not (e.fused and e.has_gate)]
    if unfit:
        return None  # the batched route multiplies fused gate/up weights; these experts are laid out otherwise
    from tools.targets.optimum_intel.patterns.lightning_hybrid import fits as lightning_fits

    if lightning_fits(ctx):
        return None  # the lightning hybrid cache pattern's patcher routes the experts itself
    names = ", ".join(e.name for e in experts)
    return (f"{names} go through transformers' experts interface, whose default path does not convert to "
            f"OpenVINO: a patcher calling {HELPER} routes them through the batched-matmul implementation")


def patcher_name(ctx: PatternContext) -> str:
    taken = set(top_level_classes(ctx.workspace, MODEL_PATCHER))
    stem = config_class_name(ctx.model_type).removesuffix("OpenVINOConfig")
    for name in [f"{stem}ModelPatcher"] + [f"{stem}MoEPatcher{k}" for k in range(2, 10)]:
        if name not in taken:
            return name
    raise ValueError(f"no free patcher class name for {ctx.model_type}")


def base_patcher(ctx: PatternContext) -> str:
    """The base config's patcher when model_patcher.py defines it (so its fixes are kept), else the decoder one."""
    defined = set(top_level_classes(ctx.workspace, MODEL_PATCHER))
    current = ctx.base_name("_MODEL_PATCHER")
    return current if current in defined else FALLBACK_PATCHER


def patcher_source(name: str, base: str, experts: list[str], flat_forward: str | None = None) -> str:
    listed = ", ".join(experts)
    source = (f"class {name}({base}):\n"
              f"    # {listed}: transformers' default experts path does not convert to OpenVINO; the\n"
              f"    # batched-matmul implementation registered by {HELPER} does.\n"
              f"    def __enter__(self):\n"
              f"        super().__enter__()\n"
              f"        {HELPER}(self)\n")
    if flat_forward:
        source += ("        from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS\n\n"
                   f'        ALL_EXPERTS_FUNCTIONS.register("ov_batched_mm", {flat_forward})\n')
    return source


def _edit(ctx: PatternContext) -> PatternEdit:
    experts = [e.name for e in experts_classes(ctx.model_type)]
    if HYBRID_MAMBA1 in ctx.selected:  # that pattern's patcher calls the helper: a config has one _MODEL_PATCHER
        return PatternEdit(min_transformers=EXPERTS_INTERFACE_SINCE,
                           note=f"the {HYBRID_MAMBA1} patcher calls {HELPER} for {', '.join(experts)}")
    name, base = patcher_name(ctx), base_patcher(ctx)
    flat = FLAT_FORWARD if FLAT_OUTPUT.name in ctx.selected else None
    block = PatcherBlock(name=name, after=base, source=patcher_source(name, base, experts, flat))
    return PatternEdit(class_attrs={"_MODEL_PATCHER": name}, imports=[(PATCHER_MODULE, name)], patchers=[block],
                       min_transformers=EXPERTS_INTERFACE_SINCE,
                       note=f"{name}({base}) calls {HELPER} for {', '.join(experts)}")


# -- the (tokens, hidden) output shape ------------------------------------------------------------------

FLAT_FORWARD = "ov_batched_mm_experts_forward_2d"
UPSTREAM_FORWARD = "batched_mm_experts_forward_patched"


def _flat_applies(ctx: PatternContext) -> str | None:
    blocks = blocks_combining_flat_output(ctx.model_type)
    if not blocks or not _applies(ctx) or UPSTREAM_FORWARD not in module_defs(ctx.workspace, MODEL_PATCHER):
        return None
    return (f"{', '.join(blocks)} add(s) to the experts' output before reshaping it, but {UPSTREAM_FORWARD} "
            f"returns (tokens, 1, hidden): the experts get a forward that calls it and restores (tokens, hidden)")


def _flat_edit(ctx: PatternContext) -> PatternEdit:
    source = (f"def {FLAT_FORWARD}(self, hidden_states, top_k_index, top_k_weights):\n"
              f"    # {UPSTREAM_FORWARD} returns (tokens, 1, hidden); the experts interface returns the shape of\n"
              f"    # hidden_states, which MoE blocks that add other outputs before reshaping rely on.\n"
              f"    return {UPSTREAM_FORWARD}(self, hidden_states, top_k_index, top_k_weights).reshape(\n"
              f"        hidden_states.shape\n"
              f"    )\n")
    blocks = ", ".join(blocks_combining_flat_output(ctx.model_type))
    return PatternEdit(patchers=[PatcherBlock(name=FLAT_FORWARD, after=HELPER, source=source)],
                       note=f"{FLAT_FORWARD} wraps {UPSTREAM_FORWARD} for {blocks}")


MOE_BATCHED_MM = Pattern("moe_batched_mm", "route fused MoE experts through register_ov_batched_mm",
                         _applies, _edit)
FLAT_OUTPUT = Pattern("moe_experts_2d_output", "give the batched experts forward the interface's (tokens, hidden) "
                      "output shape", _flat_applies, _flat_edit)


SAVED = "_ov_moe_orig_forward"  # where a patcher keeps each module's own forward while exporting


def swapping_patcher_source(name: str, base: str, comment: list[str], forwards: dict[str, str]) -> str:
    """A patcher class (model_patcher.py source) that gives modules of the named classes another forward
    on entry and gives them back their own on exit; `forwards` maps class name -> function name."""
    table = "".join(f'            "{cls}": {fn},\n' for cls, fn in forwards.items())
    notes = "".join(f"    # {line}\n" for line in comment)
    return (f"class {name}({base}):\n{notes}"
            f"    def __enter__(self):\n"
            f"        super().__enter__()\n"
            f"        patched = {{\n{table}        }}\n"
            f"        for module in self._model.modules():\n"
            f"            forward = patched.get(type(module).__name__)\n"
            f"            if forward is not None:\n"
            f"                module.{SAVED} = module.forward\n"
            f"                module.forward = types.MethodType(forward, module)\n"
            f"\n"
            f"    def __exit__(self, exc_type, exc_value, traceback):\n"
            f"        super().__exit__(exc_type, exc_value, traceback)\n"
            f"        for module in self._model.modules():\n"
            f'            if hasattr(module, "{SAVED}"):\n'
            f"                module.forward = module.{SAVED}\n"
            f"                del module.{SAVED}\n")
