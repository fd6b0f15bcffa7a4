"""Hybrid Mamba-1/attention caches through optimum-intel's GraniteMoeHybrid export.

A model whose Mamba-1 mixer computes, without a cache, what a reference mixer's slow path computes
(VARIANTS: JambaMambaMixer's, with inner dt/B/C RMS norms; ZambaMambaMixer's, with several heads and per-head
x_proj/dt_proj weights) is exported with the recurrent form patterns/ssm_mamba1_source.py writes for that
reference (the scan as GraniteMoeHybrid's loop cell with one head per (channel, state) pair) and
GraniteMoeHybrid's cache of flat conv/recurrent states and key/value tensors. A layer may hold a mixer, an
attention, or both ("hybrid": Zamba's shared attention block before its mixer).

It applies only when that cache layout is the model's own: the model is instantiated (meta device, no
weights) and each decoder layer's kind (mamba, attention or hybrid) must be what `config.layers_block_type`
says at that index, each mixer's sizes the ones the config copy gives the family's generator (channels
`expand * hidden_size`, state and kernel sizes), its conv depthwise over those channels, its in_proj the
two halves the recurrent form splits, and each attention's key/value heads and head size the generator's.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from tools.targets.optimum_intel.patch import PatcherBlock, config_class_name
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs, resolved_attrs, top_level_classes
from tools.targets.optimum_intel.patterns.moe import PATCHER_MODULE, _modeling
from tools.targets.optimum_intel.patterns.ssm_family import prefill_shape
from tools.targets.optimum_intel.patterns.ssm_layout import _decoder_layers, _expected_attention, read_layout
from tools.targets.optimum_intel.patterns.ssm_mamba1_source import (CELL, HEADED_HELPER, HELPER, REFERENCE_PATCHER,
                                                                    family_source, headed_helper_source,
                                                                    helper_source, normalized_name,
                                                                    normalized_source, patcher_source)

NAME = "hybrid_mamba1_cache"
FAMILY = "granitemoehybrid"  # the export whose cache and loop cell this pattern reuses
METHOD = "slow_forward"
CONV = "ov_causal_conv1d"
MOE = "moe_batched_mm"  # its experts route is folded into this pattern's patcher (one _MODEL_PATCHER)
MIXER_LABELS, ATTENTION_LABELS = ("mamba", "hybrid"), ("attention", "hybrid")  # the layout check's kinds


@dataclass(frozen=True)
class Variant:
    """A Mamba-1 mixer whose slow path a written recurrent form reproduces, and its recurrent state's axes."""
    reference: str  # the model type defining the reference mixer
    mixer: str
    helper: str
    source: Callable[[], str]
    heads_attr: str | None  # the mixer attribute (read from the config) counting its Mamba heads, if any

    def state_axes(self) -> str:  # the recurrent state's leading axes, from the mixer's own attributes
        return "mixer.n_mamba_heads, mixer.mamba_head_dim" if self.heads_attr else "mixer.intermediate_size, 1"


VARIANTS = (
    # one head: dt/B/C through inner RMS norms, state (batch, channels, N) carried as (batch, channels, 1, N)
    Variant("jamba", "JambaMambaMixer", HELPER, helper_source, None),
    # several heads with their own x_proj/dt_proj weights, state (batch, heads, head size, N)
    Variant("zamba", "ZambaMambaMixer", HEADED_HELPER, headed_helper_source, "n_mamba_heads"),
)


def _classes(tree: ast.Module | None) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


@lru_cache(maxsize=8)
def _reference_shape(variant: Variant) -> str | None:
    cls = _classes(_modeling(variant.reference)).get(variant.mixer)
    method = _method(cls, METHOD) if cls else None
    return prefill_shape(method) if method else None


@lru_cache(maxsize=256)
def _matches(model_type: str) -> tuple[tuple[str, Variant], ...]:
    out = []
    for name, cls in _classes(_modeling(model_type)).items():
        shape = prefill_shape(m) if (m := _method(cls, METHOD)) is not None else None
        out += [(name, v) for v in VARIANTS if shape is not None and shape == _reference_shape(v)]
    return tuple(out)


def mixer_classes(model_type: str) -> tuple[str, ...]:
    """Classes whose slow_forward computes, without a cache, what a reference mixer's does."""
    return tuple(name for name, _ in _matches(model_type))


def variant(model_type: str) -> Variant | None:
    """The one reference the model's mixers follow (None when none, or several)."""
    found = {v for _, v in _matches(model_type)}
    return next(iter(found)) if len(found) == 1 else None


def _config_read(value: ast.expr) -> str | None:
    return value.attr if isinstance(value, ast.Attribute) and getattr(value.value, "id", None) == "config" else None


@lru_cache(maxsize=256)
def config_names(model_type: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """((expand, state size, conv kernel[, heads]) config names the mixers read, problems)."""
    classes, found, problems = _classes(_modeling(model_type)), set(), []
    for name in mixer_classes(model_type):
        init = _method(classes[name], "__init__")
        reads = {}
        for stmt in ast.walk(init) if init else []:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Attribute) and getattr(stmt.targets[0].value, "id", None) == "self"):
                continue
            value = stmt.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "int" and len(value.args) == 1:
                value = value.args[0]
            if (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
                    and _config_read(value.right) == "hidden_size"):
                value = value.left  # self.intermediate_size = config.mamba_expand * config.hidden_size
            if (key := _config_read(value)) is not None:
                reads[stmt.targets[0].attr] = key
        ref = variant(model_type)
        attrs = ("intermediate_size", "ssm_state_size", "conv_kernel_size") + ((ref.heads_attr,) if ref and ref.heads_attr else ())
        names = tuple(reads.get(a) for a in attrs)
        if None in names:
            problems.append(f"{name} does not read its channel, state, kernel (and head) sizes from its config")
        else:
            found.add(names)
    if len(found) > 1 or (mixer_classes(model_type) and variant(model_type) is None):
        problems.append("the model's mixers read their sizes from different config names or follow different references")
    return (next(iter(found)) if len(found) == 1 and not problems else None), tuple(problems)


def _workspace_has_family(workspace: Path) -> bool:
    defs = module_defs(workspace, MODEL_PATCHER)
    return (isinstance(defs.get(REFERENCE_PATCHER), ast.ClassDef) and isinstance(defs.get(CELL), ast.ClassDef)
            and isinstance(defs.get(CONV), ast.FunctionDef))


def family_bases(analysis: dict, workspace: Path, registry: dict[str, str]) -> list[tuple[str, str]]:
    """(base model type, why) for search: GraniteMoeHybrid's export when the model has the Mamba-1 mixer."""
    found = mixer_classes(analysis["model_type"])
    if not found or FAMILY not in registry or not _workspace_has_family(Path(workspace)):
        return []
    ref = variant(analysis["model_type"])
    if ref is None:
        return []
    return [(FAMILY, f"{', '.join(found)} has {ref.mixer}'s Mamba-1 slow path: {FAMILY}'s hybrid cache "
                     f"and loop cell carry it in the recurrent form {ref.helper}")]


# -- the cache layout, read from the model itself ---------------------------------------------------------

def layout_problems(config, mixers: tuple[str, ...], names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(kind of each decoder layer, problems): empty problems when the family's cache fits the model."""
    import torch
    from transformers import AutoModelForCausalLM

    labels = getattr(config, "layers_block_type", None)
    if not isinstance(labels, (list, tuple)):
        return [], ["the config names no layers_block_type (the layer kinds the family's cache is built from)"]
    expand, d_state, d_conv = (getattr(config, n, None) for n in names[:3])
    heads = getattr(config, names[3], None) if len(names) > 3 else None
    try:
        channels = int(expand * config.hidden_size)
        axes = (heads, channels // heads) if len(names) > 3 else (channels,)
    except TypeError:
        return [], [f"the config lacks one of {', '.join(names)} or hidden_size"]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    if layers is None:
        return [], [f"no module list of {config.num_hidden_layers} decoder layers"]
    kinds, problems, attention = [], [], []
    for i, layer in enumerate(layers):
        ssm = [m for m in layer.modules() if type(m).__name__ in mixers]
        attn = [m for m in layer.modules() if hasattr(m, "k_proj") and hasattr(m, "head_dim")]
        kinds.append("hybrid" if ssm and attn else "mamba" if ssm else "attention" if attn else "other")
        if len(ssm) > 1 or len(attn) > 1:
            problems.append(f"layer {i}: {len(ssm)} mixers and {len(attn)} attentions (the cache has one of each)")
        attention += [(i, m) for m in attn]
        for m in ssm:
            if getattr(m, "layer_idx", None) != i:
                problems.append(f"layer {i}: its mixer's layer_idx is {getattr(m, 'layer_idx', None)}")
            sizes = {"intermediate_size": channels, "ssm_state_size": d_state, "conv_kernel_size": d_conv}
            problems += [f"layer {i}: mixer {a} {getattr(m, a, None)} != {want} read from the config"
                         for a, want in sizes.items() if getattr(m, a, None) != want]
            conv = getattr(m, "conv1d", None)
            if not (isinstance(conv, torch.nn.Conv1d) and conv.groups == conv.in_channels == conv.out_channels == channels
                    and conv.kernel_size == (d_conv,)):
                problems.append(f"layer {i}: the mixer's conv1d is not depthwise over its {channels} channels")
            if getattr(getattr(m, "in_proj", None), "out_features", None) != 2 * channels:
                problems.append(f"layer {i}: in_proj does not give the two halves (states, gate) of {channels}")
            if tuple(getattr(getattr(m, "A_log", None), "shape", ())) != (*axes, d_state):
                problems.append(f"layer {i}: A_log is not one decay per ({'head, ' if heads else ''}channel, state)")
            if len(axes) == 2 and (getattr(m, "n_mamba_heads", None), getattr(m, "mamba_head_dim", None)) != axes:
                problems.append(f"layer {i}: the mixer's heads are not {axes[0]} of {axes[1]} channels")
    if attention:
        try:
            want = _expected_attention(config)
        except (AttributeError, TypeError) as exc:
            return kinds, problems + [f"the config lacks an attention size the family's generator reads ({exc})"]
        for i, m in attention:
            kv = m.k_proj.out_features // m.head_dim
            if (m.head_dim, kv) != (want["attention_head_dim"], want["num_key_value_heads"]):
                problems.append(f"layer {i}: attention of {kv} key/value heads of {m.head_dim}, the config says "
                                f"{want['num_key_value_heads']} of {want['attention_head_dim']}")
    if list(labels) != kinds:
        problems.append(f"config.layers_block_type {list(labels)} does not name the layers the model builds ({kinds})")
    return kinds, problems


@lru_cache(maxsize=32)
def _layout(model_type: str, raw_json: str, mixers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names, name_problems = config_names(model_type)
    if names is None:
        return (), name_problems or ("no config names for the mixers' sizes",)
    return read_layout(model_type, raw_json, lambda c: layout_problems(c, mixers, names), ())


def layout(ctx: PatternContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _layout(ctx.model_type, json.dumps(ctx.raw, sort_keys=True, default=str), mixer_classes(ctx.model_type))


# -- the pattern ----------------------------------------------------------------------------------------

def _fits(ctx: PatternContext) -> bool:
    if not mixer_classes(ctx.model_type) or not _workspace_has_family(ctx.workspace):
        return False
    if ctx.base_name("_MODEL_PATCHER") != REFERENCE_PATCHER:
        return False  # the edit subclasses the family's config and patcher: only with that base
    kinds, problems = layout(ctx)
    return bool(kinds) and not problems and variant(ctx.model_type) is not None and bool(
        {"mamba", "hybrid"} & set(kinds))


def writes_normalized_config(ctx: PatternContext) -> bool:
    """Whether this pattern applies (it always normalizes a copy of the config under the family's names)."""
    return _fits(ctx)


def _applies(ctx: PatternContext) -> str | None:
    if not _fits(ctx):
        return None
    kinds, ref = layout(ctx)[0], variant(ctx.model_type)
    return (f"{', '.join(mixer_classes(ctx.model_type))} has {ref.mixer}'s Mamba-1 slow path and the model's "
            f"layers ({_counted(kinds)}) are what config.layers_block_type says, with the sizes the family's "
            f"generator reads from the config copy: {ref.helper} replaces the mixer")


def _counted(kinds) -> str:
    return ", ".join(f"{kinds.count(k)} {k}" for k in ("mamba", "hybrid", "attention") if k in kinds)


def patcher_name(ctx: PatternContext) -> str:
    taken = set(top_level_classes(ctx.workspace, MODEL_PATCHER))
    stem = config_class_name(ctx.model_type).removesuffix("OpenVINOConfig")
    for name in [f"{stem}ModelPatcher"] + [f"{stem}HybridPatcher{k}" for k in range(2, 10)]:
        if name not in taken:
            return name
    raise ValueError(f"no free patcher class name for {ctx.model_type}")


def _edit(ctx: PatternContext) -> PatternEdit:
    name, mixers = patcher_name(ctx), mixer_classes(ctx.model_type)
    names, _ = config_names(ctx.model_type)
    kinds, _ = layout(ctx)
    floor = resolved_attrs(ctx.workspace, ctx.base_class, ("MIN_TRANSFORMERS_VERSION",)).get("MIN_TRANSFORMERS_VERSION")
    experts, ref = MOE in ctx.selected, variant(ctx.model_type)
    expand, d_state, d_conv = names[:3]
    channels = f"int(config.{expand} * config.hidden_size)"
    heads, head_dim = (f"config.{names[3]}", f"{channels} // config.{names[3]}") if ref.heads_attr else (channels, "1")
    parts = [] if ref.helper in module_defs(ctx.workspace, MODEL_PATCHER) else [ref.source()]
    parts += [family_source(ctx.model_type, expand, d_state, d_conv, heads, head_dim, MIXER_LABELS, ATTENTION_LABELS),
              patcher_source(name, mixers, ctx.model_type, experts, ref.helper, ref.state_axes()),
              normalized_source(name, ctx.model_type)]
    return PatternEdit(
        class_attrs={"_MODEL_PATCHER": name, "NORMALIZED_CONFIG_CLASS": normalized_name(name)},
        imports=[(PATCHER_MODULE, name), (PATCHER_MODULE, normalized_name(name))],
        patchers=[PatcherBlock(name=name, after=REFERENCE_PATCHER, source="\n\n".join(parts))],
        min_transformers=floor.value if isinstance(floor, ast.Constant) and isinstance(floor.value, str) else None,
        joins=[FAMILY],
        note=(f"{name}({REFERENCE_PATCHER}) installs {ref.helper} on {', '.join(mixers)} over a copy of the config "
              f"laid out for Mamba-1 states; cache layout read from the model: {_counted(kinds)} layers"
              + ("; experts through register_ov_batched_mm" if experts else "")))


HYBRID_MAMBA1 = Pattern(NAME, "export a Mamba-1/attention hybrid through optimum-intel's hybrid cache with the "
                        "selective scan as its recurrent loop cell", _applies, _edit)
