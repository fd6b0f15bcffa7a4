"""Hybrid Mamba2/attention caches through optimum-intel's GraniteMoeHybrid support.

optimum-intel exports GraniteMoeHybrid by replacing its Mamba2 mixer with a recurrent form
(`granite_moe_hybrid_mamba_mixer_forward`, converted to an OpenVINO loop) and by carrying the cache as flat
conv/recurrent states plus key/value tensors (`GraniteMoeHybridModelPatcher`, `GraniteMoeHybridOpenVINOConfig`,
whose dummy generator reads the config's `mamba_*` sizes and counts "mamba" and "attention" in
`config.layer_types`). A model whose mixer has, statement for statement, GraniteMoeHybrid's mixer forward
(or Zamba2's, whose recurrent form this pattern writes: patterns/ssm_forms.py) can follow that family: this
pattern gives it a patcher (patterns/ssm_patcher.py) that installs the recurrent form on every module
of its mixer classes (wherever they sit in a layer), and joins it to the lists the repository keeps of
those state-space families (SSM_MODELS, the modeling and test lists that name GraniteMoeHybrid).

It applies only when the cache layout the family's export config would build is the model's own: the
model is instantiated (meta device, no weights) and each decoder layer's kind (mixer or attention) must
be what `config.layer_types` says at that index (a layer of neither kind, MLP or MoE, is labelled as
neither and holds no module taking a cache), and every mixer's and attention's state sizes must equal
what the family's generator reads from the config. Anything else is left to a hand-written patch.

Two written departures from GraniteMoeHybrid's form are followed: a mixer adding pointwise steps around its
projection or making its gated norm optional (FalconH1: patterns/ssm_variant.py) gets the family's recurrent
form with those steps, and decoder layers holding a mixer and an attention each ("hybrid" in
config.layer_types) get a cache pair per module, keyed by the modules' layer_idx (patterns/ssm_source.py),
since the family's forward maps one layer to one cache kind.

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
from tools.targets.optimum_intel.patterns.moe_ungated import IMPLEMENTATION, UNGATED_EXPERTS
from tools.targets.optimum_intel.patterns.ssm_family import family_names, prefill_shape, variants, width_name
from tools.targets.optimum_intel.patterns.ssm_forms import FORMS, GRANITE, MixerForm, helper_name, recurrent_source
from tools.targets.optimum_intel.patterns.ssm_patcher import REFERENCE_PATCHER, patcher_source
from tools.targets.optimum_intel.patterns.ssm_source import (CACHE_ANCHOR, CACHE_INIT, MODELING_DECODER,
                                                             family_source, normalized_name,
                                                             normalized_source, cache_init_source,
                                                             layer_cache_source)
from tools.targets.optimum_intel.patterns.ssm_layout import (  # noqa: F401 - re-exported (tests, lightning_hybrid)
    _cache_taking, _decoder_layers, layout_problems, read_layout)
from tools.targets.optimum_intel.patterns.ssm_variant import variant_helper

REFERENCE = "granitemoehybrid"  # the family whose export this pattern follows
REFERENCE_MIXER = GRANITE.mixer  # the family's mixer: its __init__ names the config keys the family reads
HELPER = GRANITE.helper  # model_patcher.py: the recurrent form of that mixer


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def _classes(tree: ast.Module | None) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}


@lru_cache(maxsize=len(FORMS))
def _reference_shape(form: MixerForm) -> str | None:
    cls = _classes(_modeling(form.model_type)).get(form.mixer)
    method = _method(cls, "torch_forward") if cls else None
    return prefill_shape(method) if method else None


@lru_cache(maxsize=256)
def mixer_forms(model_type: str) -> tuple[tuple[str, MixerForm], ...]:
    """(class, form) for the classes of the model's modeling module whose torch_forward computes, without a
    cache, what a known form's mixer does (patterns/ssm_family.py: the cache branches are the recurrent
    form's; patterns/ssm_forms.py: the forms), as written or, for a form whose recurrent form optimum-intel
    writes, but for the variant steps patterns/ssm_variant.py puts back in that recurrent form."""
    if model_type in {f.model_type for f in FORMS}:
        return ()
    shapes = [(f, _reference_shape(f)) for f in FORMS]
    return tuple((name, form) for name, cls in _classes(_modeling(model_type)).items()
                 if (m := _method(cls, "torch_forward")) is not None
                 for form, ref in shapes if ref is not None
                 and ref in (prefill_shape(m), prefill_shape(m, variants=True) if form.helper else None))


def mixer_classes(model_type: str) -> tuple[str, ...]:
    return tuple(name for name, _ in mixer_forms(model_type))


def mixer_form(model_type: str) -> MixerForm | None:
    """The one form of the model's mixers (None: no mixer of a known form, or mixers of two forms)."""
    forms = {form for _, form in mixer_forms(model_type)}
    return next(iter(forms)) if len(forms) == 1 else None


@lru_cache(maxsize=256)
def mixer_variants(model_type: str) -> tuple[tuple, tuple[str, ...]]:
    """(the variant steps the model's mixers add to their form's, problems)."""
    classes = _classes(_modeling(model_type))
    found = {() if prefill_shape(m) == _reference_shape(form) else variants(m)
             for name, form in mixer_forms(model_type) for m in (_method(classes[name], "torch_forward"),)}
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
    if (not found or mixer_form(analysis["model_type"]) is None or REFERENCE not in registry
            or not _workspace_has_family(Path(workspace))):
        return []
    mixer = mixer_form(analysis["model_type"]).mixer
    return [(REFERENCE, f"{', '.join(found)} has {mixer}'s forward: the hybrid cache family "
                        f"optimum-intel exports {REFERENCE} with")]


# -- the cache layout, read from the model itself (patterns/ssm_layout.py) --------------------------------

@lru_cache(maxsize=32)
def _layout(model_type: str, raw_json: str, mixers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names, name_problems = config_names(model_type)
    if name_problems:
        return (), name_problems

    return read_layout(model_type, raw_json, lambda c: layout_problems(c, mixers, names, width(model_type)), ())


def layout(ctx: PatternContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _layout(ctx.model_type, json.dumps(ctx.raw, sort_keys=True, default=str), mixer_classes(ctx.model_type))


# -- the pattern ----------------------------------------------------------------------------------------

def _fits(ctx: PatternContext) -> bool:
    if mixer_form(ctx.model_type) is None or not _workspace_has_family(ctx.workspace):
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
    form, (steps, _) = mixer_form(ctx.model_type), mixer_variants(ctx.model_type)
    return (f"{', '.join(mixer_classes(ctx.model_type))} has {form.mixer}'s forward"
            + (f" but for {len(steps)} pointwise steps" if steps else "") + " and the model's layers "
            f"({kinds.count('ssm')} Mamba, {kinds.count('attention')} attention, {kinds.count('hybrid')} both) are "
            f"what config.layer_types says, with the state sizes {ctx.base_class}'s generator reads: "
            f"{variant_helper_name(ctx.model_type) if steps else helper_name(form, ctx.model_type)} replaces the mixer")


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
    name, mixers, form = patcher_name(ctx), mixer_classes(ctx.model_type), mixer_form(ctx.model_type)
    floor = resolved_attrs(ctx.workspace, ctx.base_class, ("MIN_TRANSFORMERS_VERSION",)).get("MIN_TRANSFORMERS_VERSION")
    kinds, _ = layout(ctx)
    steps = variant_source(ctx.model_type, ctx.workspace)
    helper = variant_helper_name(ctx.model_type) if steps else helper_name(form, ctx.model_type)
    own = dict(form=form, helper=helper, experts=IMPLEMENTATION if UNGATED_EXPERTS.name in ctx.selected else None)
    source, attrs, imports, code = (patcher_source(name, mixers, **own), {"_MODEL_PATCHER": name},
                                    [(PATCHER_MODULE, name)], [])
    spelled_otherwise = family_spelling(ctx)
    if spelled_otherwise:
        names, _ = config_names(ctx.model_type)
        hybrid = "hybrid" in kinds
        source = "\n\n".join([patcher_source(name, mixers, ctx.model_type, **own, hybrid=hybrid),
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
    if steps:
        said = "; ".join(f"{v.place} self.{v.module}: self.{v.attr}" for v in mixer_variants(ctx.model_type)[0])
        source = (f"# {HELPER} with the pointwise steps {', '.join(mixers)} adds around it ({said})\n"
                  + steps + "\n\n" + source)
    written = [] if form.helper else [PatcherBlock(name=helper, after=HELPER, source=recurrent_source(helper, form))]
    return PatternEdit(
        class_attrs=attrs, imports=imports, code_blocks=code,
        patchers=written + [PatcherBlock(name=name, after=REFERENCE_PATCHER, source=source)],
        # the family's config and patcher are written for the transformers its base names
        min_transformers=floor.value if isinstance(floor, ast.Constant) and isinstance(floor.value, str) else None,
        joins=[REFERENCE],
        note=(f"{name}({REFERENCE_PATCHER}) installs {helper} on {', '.join(mixers)}"
              + ("" if form.helper else f" (written: the recurrent form of {form.mixer}'s forward)")
              + "; cache layout read from "
              f"the model: {kinds.count('ssm')} Mamba, {kinds.count('attention')} attention and "
              f"{kinds.count('hybrid')} Mamba+attention layers"
              + ("; the family's config names read from a copy of the model's config" if spelled_otherwise else "")))


HYBRID_MAMBA2 = Pattern("hybrid_mamba2_cache", "export a Mamba2/attention hybrid whose mixer is GraniteMoeHybrid's "
                        "through optimum-intel's recurrent mixer and hybrid cache", _applies, _edit)
