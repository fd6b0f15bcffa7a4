"""Hybrid Mamba2/attention caches through optimum-intel's GraniteMoeHybrid support.

optimum-intel exports GraniteMoeHybrid by replacing its Mamba2 mixer with a recurrent form
(`granite_moe_hybrid_mamba_mixer_forward`, converted to an OpenVINO loop) and by carrying the cache as flat
conv/recurrent states plus key/value tensors (`GraniteMoeHybridModelPatcher`, `GraniteMoeHybridOpenVINOConfig`,
whose dummy generator reads the config's `mamba_*` sizes and counts "mamba" and "attention" in
`config.layer_types`). A model whose mixer has, statement for statement, GraniteMoeHybrid's mixer forward
can follow that family: this pattern gives it a patcher that installs the recurrent form on every module
of its mixer classes (wherever they sit in a layer), and joins it to the lists the repository keeps of
those state-space families (SSM_MODELS, the modeling and test lists that name GraniteMoeHybrid).

It applies only when the cache layout the family's export config would build is the model's own: the
model is instantiated (meta device, no weights) and each decoder layer's kind (mixer or attention) must
be what `config.layer_types` says at that index, and every mixer's and attention's state sizes must equal
what the family's generator reads from the config. Anything else is left to a hand-written patch.

Two written departures from the family are followed: a mixer adding pointwise steps around its projection or
making its gated norm optional (FalconH1: patterns/ssm_variant.py) gets the family's recurrent form with those
steps, and decoder layers holding a mixer and an attention each ("hybrid" in config.layer_types) get a cache
pair per module, keyed by the modules' layer_idx (patterns/ssm_source.py), since the family's forward maps one
layer to one cache kind.

The mixer is compared on what its forward computes without a cache, up to local names
(patterns/ssm_family.py), and the sizes are read under the config names its __init__ reads them from: a
model spelling them otherwise than the family (Mamba2: `state_size`, `n_groups`, no `layers_block_type`,
its cache passed as `cache_params`) gets a copy of its config under the family's names
(patterns/ssm_source.py) for the family's generator, export config and patcher.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

from tools.targets.optimum_intel.patch import CodeBlock, PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs, resolved_attrs
from tools.targets.optimum_intel.patterns.moe import PATCHER_MODULE, _modeling, patcher_name
from tools.targets.optimum_intel.patterns.ssm_family import family_names, prefill_shape, variants, width_name
from tools.targets.optimum_intel.patterns.ssm_source import (CACHE_ANCHOR, CACHE_INIT, MODELING_DECODER,
                                                             family_function, family_source, normalized_name,
                                                             normalized_source, cache_init_source,
                                                             layer_cache_function, layer_cache_source)
from tools.targets.optimum_intel.patterns.ssm_layout import layout_problems
from tools.targets.optimum_intel.patterns.ssm_variant import variant_helper

REFERENCE = "granitemoehybrid"  # the family whose export this pattern follows
REFERENCE_MIXER = "GraniteMoeHybridMambaLayer"
HELPER = "granite_moe_hybrid_mamba_mixer_forward"  # model_patcher.py: the recurrent form of that mixer
REFERENCE_PATCHER = "GraniteMoeHybridModelPatcher"
CELL = "SelectiveSSMRecurrentCell"
SAVED = "_ov_ssm_orig_forward"


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def _classes(tree: ast.Module | None) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}


@lru_cache(maxsize=1)
def _reference_shape() -> str | None:
    cls = _classes(_modeling(REFERENCE)).get(REFERENCE_MIXER)
    method = _method(cls, "torch_forward") if cls else None
    return prefill_shape(method) if method else None


@lru_cache(maxsize=256)
def mixer_classes(model_type: str) -> tuple[str, ...]:
    """Classes of the model's modeling module whose torch_forward computes, without a cache, what
    GraniteMoeHybrid's mixer's does (patterns/ssm_family.py: the cache branches are the recurrent form's),
    as written or but for the variant steps patterns/ssm_variant.py puts back in the recurrent form."""
    ref = _reference_shape()
    if ref is None or model_type == REFERENCE:
        return ()
    return tuple(name for name, cls in _classes(_modeling(model_type)).items()
                 if (m := _method(cls, "torch_forward")) is not None
                 and ref in (prefill_shape(m), prefill_shape(m, variants=True)))


@lru_cache(maxsize=256)
def mixer_variants(model_type: str) -> tuple[tuple, tuple[str, ...]]:
    """(the variant steps the model's mixers add to the family's, problems)."""
    ref, classes = _reference_shape(), _classes(_modeling(model_type))
    found = {() if prefill_shape(m) == ref else variants(m)
             for m in (_method(classes[c], "torch_forward") for c in mixer_classes(model_type))}
    if len(found) > 1:
        return (), ("the model's mixers differ from the family's in different steps",)
    return (next(iter(found)) if found else ()), ()


@lru_cache(maxsize=256)
def width(model_type: str) -> str | None:
    """The config key giving the mixers' intermediate size outright when set (patterns/ssm_family.py)."""
    classes = _classes(_modeling(model_type))
    found = {width_name(classes[m]) for m in mixer_classes(model_type)}
    return next(iter(found)) if len(found) == 1 else None


@lru_cache(maxsize=256)
def config_names(model_type: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """((family config name, the model's), ...), problems: where the model's mixers read their sizes."""
    reference = _classes(_modeling(REFERENCE)).get(REFERENCE_MIXER)
    classes = _classes(_modeling(model_type))
    found = {tuple(family_names(reference, classes[m])[0].items()) for m in mixer_classes(model_type)}
    problems = sorted({p for m in mixer_classes(model_type) for p in family_names(reference, classes[m])[1]})
    if len(found) > 1:
        problems.append("the model's mixers read their sizes from different config names")
    if len({width_name(classes[m]) for m in mixer_classes(model_type)}) > 1:
        problems.append("the model's mixers read their intermediate size from different config names")
    problems += list(mixer_variants(model_type)[1])
    return (next(iter(found)) if len(found) == 1 and not problems else ()), tuple(problems)


def renamed(names) -> bool:
    return any(family != own for family, own in names)


def _workspace_has_family(workspace: Path) -> bool:
    defs = module_defs(workspace, MODEL_PATCHER)
    return isinstance(defs.get(HELPER), ast.FunctionDef) and isinstance(defs.get(REFERENCE_PATCHER), ast.ClassDef)


def variant_helper_name(model_type: str) -> str:
    return f"{model_type.replace('-', '_')}_mamba_mixer_forward"


def variant_source(model_type: str, workspace: Path) -> str | None:
    """The recurrent form for mixers with variant steps ("" for none): the workspace's family helper with
    the steps put back (patterns/ssm_variant.py); None when it has no place for them."""
    steps, _ = mixer_variants(model_type)
    if not steps:
        return ""
    helper = module_defs(workspace, MODEL_PATCHER).get(HELPER)
    if not isinstance(helper, ast.FunctionDef):
        return None
    return variant_helper(helper, (Path(workspace) / MODEL_PATCHER).read_text(), variant_helper_name(model_type), steps)


def family_bases(analysis: dict, workspace: Path, registry: dict[str, str]) -> list[tuple[str, str]]:
    """(base model type, why) for search: the family to follow when the model's mixer is its mixer."""
    found = mixer_classes(analysis["model_type"])
    if not found or REFERENCE not in registry or not _workspace_has_family(Path(workspace)):
        return []
    return [(REFERENCE, f"{', '.join(found)} has {REFERENCE_MIXER}'s forward: the hybrid cache family "
                        f"optimum-intel exports {REFERENCE} with")]


# -- the cache layout, read from the model itself (patterns/ssm_layout.py) --------------------------------

def _floats(value):
    """transformers 5 writes non-finite floats into config.json as {"__float__": "Infinity"}."""
    if isinstance(value, dict):
        return float(value["__float__"]) if set(value) == {"__float__"} else {k: _floats(v) for k, v in value.items()}
    return [_floats(v) for v in value] if isinstance(value, list) else value


@lru_cache(maxsize=32)
def _layout(model_type: str, raw_json: str, mixers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from transformers import AutoConfig

    names, name_problems = config_names(model_type)
    if name_problems:
        return (), name_problems

    kwargs = {k: _floats(v) for k, v in json.loads(raw_json).items()
              if k not in ("model_type", "architectures", "transformers_version", "auto_map")}
    try:  # the analysed config itself: a default config would describe another model's layers
        config = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers' validation errors have no common type
        return (), (f"transformers cannot build the model's config: {str(exc)[:200]}",)
    try:
        kinds, problems = layout_problems(config, mixers, names, width(model_type))
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
    if "hybrid" in kinds and not family_spelling(ctx):
        return False  # hybrid layers are counted in the family config copy the patch writes
    return (bool(kinds) and not problems and bool({"ssm", "hybrid"} & set(kinds))
            and variant_source(ctx.model_type, ctx.workspace) is not None)


def _applies(ctx: PatternContext) -> str | None:
    if not _fits(ctx):
        return None
    kinds, _ = layout(ctx)
    steps, _ = mixer_variants(ctx.model_type)
    return (f"{', '.join(mixer_classes(ctx.model_type))} has {REFERENCE_MIXER}'s forward"
            + (f" but for {len(steps)} pointwise steps" if steps else "") + " and the model's layers "
            f"({kinds.count('ssm')} Mamba, {kinds.count('attention')} attention, {kinds.count('hybrid')} both) are "
            f"what config.layer_types says, with the state sizes {ctx.base_class}'s generator reads: "
            f"{variant_helper_name(ctx.model_type) if steps else HELPER} replaces the mixer")


def patcher_source(name: str, mixers: tuple[str, ...], family: str | None = None, helper: str = HELPER,
                   hybrid: bool = False) -> str:
    """The patcher; `family` (the model type) when the model's config and forward spell the family's
    names otherwise (patterns/ssm_source.py): the family's patcher then reads a copy of the config under
    the family's names, and the cache goes to the forward under the name it takes. `helper`: the recurrent
    form installed on the mixers; `hybrid`: layers holding a mixer and an attention each, whose cache
    pairs the family's forward cannot map (one kind per layer): the model's own modules key them."""
    listed = ", ".join(mixers)
    table = "(" + ", ".join(f'"{m}"' for m in mixers) + ("," if len(mixers) == 1 else "") + ")"
    fn = family_function(family) if family else None
    init = (
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        super().__init__(config, model, model_kwargs)\n"
    ) if not family else (
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        # the family's patcher reads the layer kinds from the export config's model config\n"
        f"        own = config._config\n"
        f"        config._config = {fn}(own)\n"
        f"        try:\n"
        f"            super().__init__(config, model, model_kwargs)\n"
        f"        finally:\n"
        f"            config._config = own\n")
    cache_name = "" if not family else (
        f"        # the family's forward passes the cache as past_key_values: pass it as the model's forward takes it\n"
        f"        parameters = inspect.signature(model_forward).parameters\n"
        f"        cache_name = \"cache_params\" if \"past_key_values\" not in parameters and \"cache_params\" in parameters else None\n")
    cache_said = (f"    # The cache is {REFERENCE_PATCHER}'s (config.layer_types names the Mamba and attention layers).\n"
                  if not (family and hybrid) else
                  f"    # The cache holds a pair per mixer and per attention ({layer_cache_function(family)}).\n")
    layer_cache = "" if not (family and hybrid) else (
        f"        # each decoder layer holds a mixer and an attention: a cache pair for each module, keyed by its layer_idx\n"
        f"        mixer_layers = [m.layer_idx for m in model.modules() if type(m).__name__ in self.MIXER_CLASSES]\n"
        f"        attention_layers = [m.layer_idx for m in model.modules() if hasattr(m, \"k_proj\") and hasattr(m, \"head_dim\")]\n"
        f"        self.patched_forward = self.orig_forward = {layer_cache_function(family)}(self, mixer_layers, attention_layers)\n")
    rename = "" if not family else (
        f"            if cache_name is not None and \"past_key_values\" in kwargs:\n"
        f"                kwargs[cache_name] = kwargs.pop(\"past_key_values\")\n")
    enter = "" if not family else (
        f"        # the cache wrapper the family's forward builds reads the layer kinds from it too\n"
        f"        self._ov_own_config = self.real_config._config\n"
        f"        self.real_config._config = {fn}(self._ov_own_config)\n")
    leave = "" if not family else "        self.real_config._config = self._ov_own_config\n"
    return (
        f"class {name}({REFERENCE_PATCHER}):\n"
        f"    # {listed} has {REFERENCE_MIXER}'s forward: {helper},\n"
        f"    # the recurrent form optimum-intel converts to an OpenVINO loop, replaces it on every such module.\n"
        f"{cache_said}"
        f"    MIXER_CLASSES = {table}\n"
        f"\n"
        f"{init}"
        f"        self._ov_model_forward = model_forward = self.model_orig_forward\n"
        f"        takes_positions = \"position_ids\" in inspect.signature(model_forward).parameters\n"
        f"{cache_name}"
        f"\n"
        f"        def forward_with_positions(input_ids=None, attention_mask=None, **kwargs):\n"
        f"            # the family's forward passes no position ids: without them the model counts positions\n"
        f"            # from 0 on every call, also when decoding from the cache; count them as generate() does\n"
        f"            if takes_positions and attention_mask is not None and kwargs.get(\"position_ids\") is None:\n"
        f"                positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)\n"
        f"                kwargs[\"position_ids\"] = positions[:, -input_ids.shape[1] :]\n"
        f"{rename}"
        f"            return model_forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)\n"
        f"\n"
        f"        self.model_orig_forward = forward_with_positions\n"
        f"{layer_cache}"
        f"\n"
        f"    def __enter__(self):\n"
        f"        OVDecoderModelPatcher.__enter__(self)\n"
        f"        setattr(self._model, self.orig_forward_name, self.patched_forward)\n"
        f"{enter}"
        f"\n"
        f"        def recurrent_forward(mixer):\n"
        f"            def forward(hidden_states, cache_params=None, attention_mask=None, **kwargs):\n"
        f"                conv_state = recurrent_state = raw_attention_mask = None\n"
        f"                if cache_params is not None:\n"
        f"                    idx = cache_params.mamba_mapping[mixer.layer_idx]\n"
        f"                    conv_state = cache_params.conv_states[idx]\n"
        f"                    recurrent_state = cache_params.recurrent_states[idx]\n"
        f"                    raw_attention_mask = cache_params.raw_attention_mask\n"
        f"                out, conv_state, recurrent_state = {helper}(\n"
        f"                    mixer, hidden_states, cache_params, conv_state, recurrent_state, raw_attention_mask\n"
        f"                )\n"
        f"                if cache_params is not None:\n"
        f"                    cache_params.conv_states[idx] = conv_state\n"
        f"                    cache_params.recurrent_states[idx] = recurrent_state\n"
        f"                return out\n"
        f"\n"
        f"            return forward\n"
        f"\n"
        f"        for module in self._model.modules():\n"
        f"            if type(module).__name__ in self.MIXER_CLASSES:\n"
        f"                module.{SAVED} = module.forward\n"
        f"                module.selective_ssm_recurrent_cell = {CELL}()\n"
        f"                module.forward = recurrent_forward(module)\n"
        f"\n"
        f"    def __exit__(self, exc_type, exc_value, traceback):\n"
        f"        OVDecoderModelPatcher.__exit__(self, exc_type, exc_value, traceback)\n"
        f"        setattr(self._model, self.orig_forward_name, self._ov_model_forward)\n"
        f"{leave}"
        f"        for module in self._model.modules():\n"
        f'            if hasattr(module, "{SAVED}"):\n'
        f"                module.forward = module.{SAVED}\n"
        f"                del module.{SAVED}, module.selective_ssm_recurrent_cell\n"
    )


def family_spelling(ctx: PatternContext) -> bool:
    """Whether the model spells what the family's export reads otherwise (config names, layer kinds)."""
    names, _ = config_names(ctx.model_type)
    kinds = [getattr(ctx.config, a, None) for a in ("layer_types", "layers_block_type")]
    return (renamed(names) or any(k is None for k in kinds) or width(ctx.model_type) is not None
            or any("hybrid" in (k or ()) for k in kinds))


def writes_normalized_config(ctx: PatternContext) -> bool:
    """Whether this pattern applies and normalizes a copy of the config under the family's names."""
    return _fits(ctx) and family_spelling(ctx)


def _edit(ctx: PatternContext) -> PatternEdit:
    name, mixers = patcher_name(ctx), mixer_classes(ctx.model_type)
    floor = resolved_attrs(ctx.workspace, ctx.base_class, ("MIN_TRANSFORMERS_VERSION",)).get("MIN_TRANSFORMERS_VERSION")
    kinds, _ = layout(ctx)
    helper = variant_source(ctx.model_type, ctx.workspace)
    helper_name = variant_helper_name(ctx.model_type) if helper else HELPER
    source = patcher_source(name, mixers, helper=helper_name)
    attrs, imports, code = {"_MODEL_PATCHER": name}, [(PATCHER_MODULE, name)], []
    spelled_otherwise = family_spelling(ctx)
    if spelled_otherwise:
        names, _ = config_names(ctx.model_type)
        hybrid = "hybrid" in kinds
        source = "\n\n".join([patcher_source(name, mixers, ctx.model_type, helper_name, hybrid),
                               family_source(ctx.model_type, names, bool({"attention", "hybrid"} & set(kinds)),
                                             width(ctx.model_type), hybrid),
                               *([layer_cache_source(ctx.model_type)] if hybrid else []),
                               normalized_source(name, ctx.model_type)])
        attrs["NORMALIZED_CONFIG_CLASS"] = normalized_name(name)
        imports.append((PATCHER_MODULE, normalized_name(name)))
        if getattr(ctx.config, "intermediate_size", None) is None:
            code.append(CodeBlock(file=MODELING_DECODER, function=CACHE_INIT, after_call=CACHE_ANCHOR,
                                  source=cache_init_source(ctx.model_type, dict(names)["mamba_expand"]),
                                  marker=f'config.model_type == "{ctx.model_type}" and getattr(config, "intermediate_size"'))
    if helper:
        steps, _ = mixer_variants(ctx.model_type)
        said = "; ".join(f"{v.place} self.{v.module}: self.{v.attr}" for v in steps)
        source = (f"# {HELPER} with the pointwise steps {', '.join(mixers)} adds around it ({said})\n"
                  + helper + "\n\n" + source)
    return PatternEdit(
        class_attrs=attrs, imports=imports, code_blocks=code,
        patchers=[PatcherBlock(name=name, after=REFERENCE_PATCHER, source=source)],
        # the family's config and patcher are written for the transformers its base names
        min_transformers=floor.value if isinstance(floor, ast.Constant) and isinstance(floor.value, str) else None,
        joins=[REFERENCE],
        note=(f"{name}({REFERENCE_PATCHER}) installs {helper_name} on {', '.join(mixers)}; cache layout read from "
              f"the model: {kinds.count('ssm')} Mamba, {kinds.count('attention')} attention and "
              f"{kinds.count('hybrid')} Mamba+attention layers"
              + ("; the family's config names read from a copy of the model's config" if spelled_otherwise else "")))


HYBRID_MAMBA2 = Pattern("hybrid_mamba2_cache", "export a Mamba2/attention hybrid whose mixer is GraniteMoeHybrid's "
                        "through optimum-intel's recurrent mixer and hybrid cache", _applies, _edit)
