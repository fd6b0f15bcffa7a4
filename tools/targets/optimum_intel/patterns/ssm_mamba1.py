"""Hybrid Mamba-1/attention caches through optimum-intel's GraniteMoeHybrid export.

A model whose Mamba-1 mixer computes, without a cache, what the reference mixer's slow path computes
(JambaMambaMixer's `slow_forward`: gated in_proj, depthwise causal conv, x_proj into dt/B/C with inner RMS
norms, dt_proj + softplus, selective scan over a (channels, states) decay matrix) is exported with the
recurrent form patterns/ssm_mamba1_source.py writes (the scan as GraniteMoeHybrid's loop cell with one head
per (channel, state) pair) and GraniteMoeHybrid's cache of flat conv/recurrent states and key/value tensors.

It applies only when that cache layout is the model's own: the model is instantiated (meta device, no
weights) and each decoder layer's kind (Mamba mixer or attention) must be what `config.layers_block_type`
says at that index, each mixer's sizes the ones the config copy gives the family's generator (channels
`expand * hidden_size`, state and kernel sizes), its conv depthwise over those channels, its in_proj the
two halves the recurrent form splits, and each attention's key/value heads and head size the generator's.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

from tools.targets.optimum_intel.patch import PatcherBlock, config_class_name
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs, resolved_attrs, top_level_classes
from tools.targets.optimum_intel.patterns.moe import PATCHER_MODULE, _modeling
from tools.targets.optimum_intel.patterns.ssm_family import prefill_shape
from tools.targets.optimum_intel.patterns.ssm_hybrid import _decoder_layers, _expected_attention, _floats
from tools.targets.optimum_intel.patterns.ssm_mamba1_source import (CELL, HELPER, REFERENCE_PATCHER, family_source,
                                                                    helper_source, normalized_name,
                                                                    normalized_source, patcher_source)

NAME = "hybrid_mamba1_cache"
FAMILY = "granitemoehybrid"  # the export whose cache and loop cell this pattern reuses
REFERENCE = "jamba"  # the mixer whose slow path the written recurrent form reproduces
REFERENCE_MIXER = "JambaMambaMixer"
METHOD = "slow_forward"
CONV = "ov_causal_conv1d"
MOE = "moe_batched_mm"  # its experts route is folded into this pattern's patcher (one _MODEL_PATCHER)


def _classes(tree: ast.Module | None) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


@lru_cache(maxsize=1)
def _reference_shape() -> str | None:
    cls = _classes(_modeling(REFERENCE)).get(REFERENCE_MIXER)
    method = _method(cls, METHOD) if cls else None
    return prefill_shape(method) if method else None


@lru_cache(maxsize=256)
def mixer_classes(model_type: str) -> tuple[str, ...]:
    """Classes whose slow_forward computes, without a cache, what the reference mixer's does."""
    ref = _reference_shape()
    if ref is None:
        return ()
    return tuple(name for name, cls in _classes(_modeling(model_type)).items()
                 if (m := _method(cls, METHOD)) is not None and prefill_shape(m) == ref)


def _config_read(value: ast.expr) -> str | None:
    return value.attr if isinstance(value, ast.Attribute) and getattr(value.value, "id", None) == "config" else None


@lru_cache(maxsize=256)
def config_names(model_type: str) -> tuple[tuple[str, str, str] | None, tuple[str, ...]]:
    """((expand, state size, conv kernel) config names the mixers read, problems)."""
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
        names = tuple(reads.get(a) for a in ("intermediate_size", "ssm_state_size", "conv_kernel_size"))
        if None in names:
            problems.append(f"{name} does not read its channel, state and kernel sizes from its config")
        else:
            found.add(names)
    if len(found) > 1:
        problems.append("the model's mixers read their sizes from different config names")
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
    return [(FAMILY, f"{', '.join(found)} has {REFERENCE_MIXER}'s Mamba-1 slow path: {FAMILY}'s hybrid cache "
                     f"and loop cell carry it in the recurrent form {HELPER}")]


# -- the cache layout, read from the model itself ---------------------------------------------------------

def layout_problems(config, mixers: tuple[str, ...], names: tuple[str, str, str]) -> tuple[list[str], list[str]]:
    """(kind of each decoder layer, problems): empty problems when the family's cache fits the model."""
    import torch
    from transformers import AutoModelForCausalLM

    labels = getattr(config, "layers_block_type", None)
    if not isinstance(labels, (list, tuple)):
        return [], ["the config names no layers_block_type (the layer kinds the family's cache is built from)"]
    expand, d_state, d_conv = (getattr(config, n, None) for n in names)
    try:
        channels = int(expand * config.hidden_size)
    except TypeError:
        return [], [f"the config lacks {names[0]} or hidden_size"]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    if layers is None:
        return [], [f"no module list of {config.num_hidden_layers} decoder layers"]
    kinds, problems, attention = [], [], []
    for i, layer in enumerate(layers):
        ssm = [m for m in layer.modules() if type(m).__name__ in mixers]
        attn = [m for m in layer.modules() if hasattr(m, "k_proj") and hasattr(m, "head_dim")]
        kinds.append("mamba" if ssm and not attn else "attention" if attn and not ssm else "other")
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
            if tuple(getattr(getattr(m, "A_log", None), "shape", ())) != (channels, d_state):
                problems.append(f"layer {i}: A_log is not one decay per (channel, state)")
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
    from transformers import AutoConfig

    names, name_problems = config_names(model_type)
    if names is None:
        return (), name_problems or ("no config names for the mixers' sizes",)
    kwargs = {k: _floats(v) for k, v in json.loads(raw_json).items()
              if k not in ("model_type", "architectures", "transformers_version", "auto_map")}
    try:  # the analysed config itself: a default config would describe another model's layers
        config = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers' validation errors have no common type
        return (), (f"transformers cannot build the model's config: {str(exc)[:200]}",)
    try:
        kinds, problems = layout_problems(config, mixers, names)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be built on the meta device is not this pattern's
        return (), (f"the model could not be instantiated to read its layout: {str(exc)[:200]}",)
    return tuple(kinds), tuple(problems)


def layout(ctx: PatternContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _layout(ctx.model_type, json.dumps(ctx.raw, sort_keys=True, default=str), mixer_classes(ctx.model_type))


# -- the pattern ----------------------------------------------------------------------------------------

def _fits(ctx: PatternContext) -> bool:
    if not mixer_classes(ctx.model_type) or not _workspace_has_family(ctx.workspace):
        return False
    if ctx.base_name("_MODEL_PATCHER") != REFERENCE_PATCHER:
        return False  # the edit subclasses the family's config and patcher: only with that base
    kinds, problems = layout(ctx)
    return bool(kinds) and not problems and "mamba" in kinds


def writes_normalized_config(ctx: PatternContext) -> bool:
    """Whether this pattern applies (it always normalizes a copy of the config under the family's names)."""
    return _fits(ctx)


def _applies(ctx: PatternContext) -> str | None:
    if not _fits(ctx):
        return None
    kinds, _ = layout(ctx)
    return (f"{', '.join(mixer_classes(ctx.model_type))} has {REFERENCE_MIXER}'s Mamba-1 slow path and the model's "
            f"layers ({kinds.count('mamba')} Mamba, {kinds.count('attention')} attention) are what "
            f"config.layers_block_type says, with the sizes the family's generator reads from the config copy: "
            f"{HELPER} replaces the mixer")


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
    experts = MOE in ctx.selected
    parts = [] if HELPER in module_defs(ctx.workspace, MODEL_PATCHER) else [helper_source()]
    parts += [family_source(ctx.model_type, *names), patcher_source(name, mixers, ctx.model_type, experts),
              normalized_source(name, ctx.model_type)]
    return PatternEdit(
        class_attrs={"_MODEL_PATCHER": name, "NORMALIZED_CONFIG_CLASS": normalized_name(name)},
        imports=[(PATCHER_MODULE, name), (PATCHER_MODULE, normalized_name(name))],
        patchers=[PatcherBlock(name=name, after=REFERENCE_PATCHER, source="\n\n".join(parts))],
        min_transformers=floor.value if isinstance(floor, ast.Constant) and isinstance(floor.value, str) else None,
        joins=[FAMILY],
        note=(f"{name}({REFERENCE_PATCHER}) installs {HELPER} on {', '.join(mixers)} over a copy of the config "
              f"laid out for Mamba-1 states; cache layout read from the model: {kinds.count('mamba')} Mamba and "
              f"{kinds.count('attention')} attention layers" + ("; experts through register_ov_batched_mm"
                                                                 if experts else "")))


HYBRID_MAMBA1 = Pattern(NAME, "export a Mamba-1/attention hybrid through optimum-intel's hybrid cache with the "
                        "selective scan as its recurrent loop cell", _applies, _edit)
