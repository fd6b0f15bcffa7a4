"""Hybrid softmax / lightning attention caches through optimum-intel's hybrid cache export.

Some models mix softmax attention layers (a key/value cache) with lightning attention layers, a linear attention
with a per-head exponential decay whose cache is one (num_heads, head_dim, head_dim) state per layer
(MiniMax). Their modeling code walks the prompt in blocks with a Python loop, which a trace freezes at the
example's length, and asks for a cache class of its own. optimum-intel exports hybrid caches as flat
`cache_params.*` inputs and outputs (GraniteMoeHybridOpenVINOConfig: inputs, dummy inputs, the stateful
transformation and OVModelWithMambaForCausalLM, which the model joins through the family lists). This pattern
writes, on that base: a forward computing the lightning sums over the whole sequence at once
(patterns/lightning_source.py), a cache wrapper mapping attention layers to key/value pairs and lightning layers
to their state, a patcher installing both (and routing fused experts through register_ov_batched_mm), a dummy
generator for the states and the config method naming the cache inputs.

It applies only when the rewrite is exact and the cache layout is the model's own: a modeling class's `forward`
and `decay_factors` are, statement for statement up to local names, the reference the rewrite was verified
against (patterns/lightning_reference.py); the model, instantiated on the meta device, has in each decoder layer
either such a module (its layer_idx that layer's) or a softmax attention, and `config.layer_types` names every
lightning layer with one label and no other layer with it; the state and key/value sizes the generator reads
from the config are the modules' own. Anything else is left to a hand-written patch.
"""

from __future__ import annotations

import ast
import copy
import json
from functools import lru_cache
from pathlib import Path

from tools.targets.optimum_intel.patch import ModuleBlock, PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import (INPUT_GENERATORS, MODEL_PATCHER, function_name, module_defs,
                                                       resolved_attrs)
from tools.targets.optimum_intel.patterns.lightning_reference import REFERENCE as REFERENCE_SOURCE
from tools.targets.optimum_intel.patterns.lightning_source import (Names, cache_axes_source, forward_source,
                                                                   generator_source, patcher_source, wrap_source)
from tools.targets.optimum_intel.patterns.moe import HELPER, PATCHER_MODULE, _modeling, experts_classes, patcher_name
from tools.targets.optimum_intel.patterns.ssm_family import _Rename
from tools.targets.optimum_intel.patterns.ssm_layout import _decoder_layers, read_layout

FAMILY = "granitemoehybrid"  # the hybrid cache export this pattern's config class extends
FAMILY_PATCHER = "GraniteMoeHybridModelPatcher"
FAMILY_GENERATOR = "Zamba2DummyPastKeyValuesGenerator"  # the family's generator: the new one is written after it
GENERATORS_MODULE = "optimum.exporters.openvino.input_generators"
COMPARED = ("forward", "decay_factors")  # what the rewrite's exactness rests on


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def shape(func: ast.FunctionDef) -> str:
    """A function's computation comparable across classes: no docstring or annotations, locals renamed in
    order of binding (patterns/ssm_family.py's renaming)."""
    body = [s for s in func.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    args = copy.deepcopy(func.args)
    for a in args.args + args.kwonlyargs + [x for x in (args.vararg, args.kwarg) if x]:
        a.annotation = None
    local = {a.arg for a in args.args + args.kwonlyargs} | {
        n.id for s in body for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    renamer = _Rename(local)
    args = renamer.visit(args)
    body = [renamer.visit(s) for s in copy.deepcopy(body)]
    return ast.dump(args) + "\n" + "\n".join(ast.dump(s) for s in body)


@lru_cache(maxsize=1)
def _reference() -> dict[str, str]:
    cls = next(n for n in ast.parse(REFERENCE_SOURCE).body if isinstance(n, ast.ClassDef))
    return {name: shape(_method(cls, name)) for name in COMPARED}


def matches_reference(cls: ast.ClassDef) -> bool:
    ref = _reference()
    return all((m := _method(cls, name)) is not None and shape(m) == ref[name] for name in COMPARED)


@lru_cache(maxsize=256)
def lightning_classes(model_type: str) -> tuple[str, ...]:
    """Classes of the model's modeling module whose forward and decays are the reference lightning attention."""
    tree = _modeling(model_type)
    return tuple(n.name for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef) and matches_reference(n))


def _workspace_has_family(workspace: Path) -> bool:
    return (isinstance(module_defs(workspace, MODEL_PATCHER).get(FAMILY_PATCHER), ast.ClassDef)
            and isinstance(module_defs(workspace, INPUT_GENERATORS).get(FAMILY_GENERATOR), ast.ClassDef))


def family_bases(analysis: dict, workspace: Path, registry: dict[str, str]) -> list[tuple[str, str]]:
    """(base model type, why) for search: the hybrid cache export to extend when the model has lightning layers."""
    found = lightning_classes(analysis["model_type"])
    if not found or FAMILY not in registry or not _workspace_has_family(Path(workspace)):
        return []
    return [(FAMILY, f"{', '.join(found)} is a lightning attention with a state per layer: the hybrid cache "
                     f"export optimum-intel gives {FAMILY} carries it")]


# -- the cache layout, read from the model itself ---------------------------------------------------------

def layout_problems(config, classes: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """(the layer_types label of the lightning layers, problems): no problems when the cache the generator and
    patcher build from the config is the model's own."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    if layers is None:
        return None, [f"no module list of {config.num_hidden_layers} decoder layers"]
    labels = list(getattr(config, "layer_types", None) or [])
    if len(labels) != len(layers):
        return None, [f"config.layer_types names {len(labels)} layers, the model builds {len(layers)}"]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kinds, problems = [], []
    for i, layer in enumerate(layers):
        lightning = [m for m in layer.modules() if type(m).__name__ in classes]
        attention = [m for m in layer.modules() if hasattr(m, "k_proj") and hasattr(m, "head_dim")]
        if len(lightning) + len(attention) != 1:
            problems.append(f"layer {i}: {len(lightning)} lightning and {len(attention)} softmax attention modules")
            kinds.append("other")
            continue
        kinds.append("lightning" if lightning else "attention")
        for m in lightning:
            if getattr(m, "layer_idx", None) != i:
                problems.append(f"layer {i}: its lightning attention's layer_idx is {getattr(m, 'layer_idx', None)}")
            if (m.num_attention_heads, m.head_dim) != (config.num_attention_heads, head_dim):
                problems.append(f"layer {i}: lightning state of {m.num_attention_heads} heads of {m.head_dim}, the "
                                f"config says {config.num_attention_heads} of {head_dim}")
        for m in attention:
            kv = m.k_proj.out_features // m.head_dim
            if (m.head_dim, kv) != (head_dim, config.num_key_value_heads):
                problems.append(f"layer {i}: attention of {kv} key/value heads of {m.head_dim}, the config says "
                                f"{config.num_key_value_heads} of {head_dim}")
    named = {labels[i] for i, k in enumerate(kinds) if k == "lightning"}
    if not named:
        return None, problems + ["no lightning attention layer"]
    if len(named) > 1:
        return None, problems + [f"config.layer_types names the lightning layers {sorted(named)}"]
    label = named.pop()
    others = [i for i, k in enumerate(kinds) if k != "lightning" and labels[i] == label]
    if others:
        problems.append(f"config.layer_types calls layers {others} {label!r}, but they are not lightning attention")
    return label, problems


@lru_cache(maxsize=32)
def _layout(model_type: str, raw_json: str, classes: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    return read_layout(model_type, raw_json, lambda c: layout_problems(c, classes), None)


def layout(ctx: PatternContext) -> tuple[str | None, tuple[str, ...]]:
    return _layout(ctx.model_type, json.dumps(ctx.raw, sort_keys=True, default=str), lightning_classes(ctx.model_type))


# -- the pattern ----------------------------------------------------------------------------------------

def _experts(ctx: PatternContext) -> tuple[bool, bool]:
    """(the model has experts-interface classes, they all fit register_ov_batched_mm and it is defined)."""
    found = experts_classes(ctx.model_type)
    helper = isinstance(module_defs(ctx.workspace, MODEL_PATCHER).get(HELPER), ast.FunctionDef)
    return bool(found), bool(found) and helper and all(e.fused and e.has_gate for e in found)


def fits(ctx: PatternContext) -> bool:
    if not lightning_classes(ctx.model_type) or not _workspace_has_family(ctx.workspace):
        return False
    if ctx.base_name("_MODEL_PATCHER") != FAMILY_PATCHER:
        return False  # the config class extends the family's inputs and dummy inputs: only on that base
    has_experts, routed = _experts(ctx)
    if has_experts and not routed:
        return False  # experts the batched route cannot run stay untraceable
    label, problems = layout(ctx)
    return label is not None and not problems


def _applies(ctx: PatternContext) -> str | None:
    if not fits(ctx):
        return None
    label, _ = layout(ctx)
    return (f"{', '.join(lightning_classes(ctx.model_type))} is the reference lightning attention (block loop, "
            f"a state per layer) and config.layer_types names its layers {label!r}, with the sizes the cache is "
            f"built from: a whole-sequence forward and a hybrid cache of states and key/value pairs")


def names(ctx: PatternContext) -> Names:
    patcher = patcher_name(ctx)
    stem = patcher.removesuffix("ModelPatcher")
    label, _ = layout(ctx)
    return Names(model_type=ctx.model_type, forward=function_name(ctx.model_type, "lightning_attention_forward"),
                 wrap=f"{stem}CacheWrap", patcher=patcher, generator=f"{stem}DummyPastKeyValuesGenerator",
                 label=label or "", lightning=lightning_classes(ctx.model_type), experts=_experts(ctx)[0])


def _edit(ctx: PatternContext) -> PatternEdit:
    n = names(ctx)
    floor = resolved_attrs(ctx.workspace, ctx.base_class, ("MIN_TRANSFORMERS_VERSION",)).get("MIN_TRANSFORMERS_VERSION")
    patcher = "\n\n".join([forward_source(n), wrap_source(n), patcher_source(n)])
    return PatternEdit(
        class_attrs={"DUMMY_INPUT_GENERATOR_CLASSES": f"(DummyTextInputGenerator, {n.generator})",
                     "DUMMY_PKV_GENERATOR_CLASS": n.generator, "_MODEL_PATCHER": n.patcher},
        imports=[(PATCHER_MODULE, n.patcher), (GENERATORS_MODULE, n.generator)],
        patchers=[PatcherBlock(name=n.patcher, after=FAMILY_PATCHER, source=patcher)],
        module_blocks=[ModuleBlock(file=INPUT_GENERATORS, after=FAMILY_GENERATOR, source=generator_source(n))],
        methods=[cache_axes_source(n)], no_conv_state=True,
        min_transformers=floor.value if isinstance(floor, ast.Constant) and isinstance(floor.value, str) else None,
        joins=[FAMILY],
        note=(f"{n.patcher} installs {n.forward} on {', '.join(n.lightning)} and carries the cache as "
              f"{n.wrap}; {n.generator} builds the states" + (f"; experts through {HELPER}" if n.experts else "")))


LIGHTNING_HYBRID = Pattern("lightning_hybrid_cache", "export a softmax/lightning attention hybrid with a "
                           "whole-sequence lightning forward and a cache of states and key/value pairs",
                           _applies, _edit)
