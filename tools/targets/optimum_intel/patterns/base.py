"""Patch patterns for optimum-intel: the recurring fixes maintainers make when a plain registration of an
existing config class is not enough.

A pattern is a name, a precondition on the analysis and the chosen base (it returns the reason it applies,
or None) and the edit it contributes to the patch: class attributes of the new config class, names to
import into model_configs.py, and patcher classes for model_patcher.py. Edits are additive and reuse what
the workspace already defines (generators, normalized configs, register_ov_batched_mm) by name; whether a
pattern was right is decided only by the verification, never by the precondition.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable

from packaging.version import Version
from pydantic import BaseModel, Field

from tools.targets.optimum_intel.patch import CodeBlock, ModuleBlock, PatcherBlock
from tools.targets.optimum_intel.patterns.edit import INPUT_GENERATORS, module_classes, resolved_attrs

UTILS = "optimum/exporters/openvino/utils.py"
GENERATORS_MODULE = "optimum.utils.input_generators"
MLA_GENERATOR = "OVMiniCPM3DummyPastKeyValuesGenerator"  # optimum-intel's own, written for MiniCPM3/DeepSeek
NORMALIZED_MODULE = "optimum.utils.normalized_config"
BASE_ATTRS = ("NORMALIZED_CONFIG_CLASS", "DUMMY_PKV_GENERATOR_CLASS", "DUMMY_INPUT_GENERATOR_CLASSES",
              "_MODEL_PATCHER")
# What optimum's past-key-values generators read from the normalized config: whether they follow
# num_key_value_heads (GQA) and how they treat head_dim. Generators not listed are model-specific: a
# base that uses one knows better than any pattern, so the patterns leave it alone.
PKV_GENERATORS = {
    "DummyPastKeyValuesGenerator": {"gqa": False, "head_dim": "ignored"},
    "MistralDummyPastKeyValuesGenerator": {"gqa": True, "head_dim": "optional"},
    "GemmaDummyPastKeyValuesGenerator": {"gqa": True, "head_dim": "required"},
    # keys of qk_nope_head_dim + qk_rope_head_dim, values of v_head_dim: the multi-head latent attention cache
    MLA_GENERATOR: {"gqa": True, "head_dim": "ignored"},
}
# where a generator is imported from, when not from optimum.utils
GENERATOR_MODULES = {MLA_GENERATOR: "optimum.exporters.openvino.input_generators"}
MLA_DIMS = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
# NormalizedTextConfig name -> config keys other models use for it (first found wins)
ALIASES = {
    "num_layers": ("num_hidden_layers", "n_layer", "n_layers", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads", "num_heads"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
    "head_dim": ("head_dim", "head_size", "kv_channels", "attention_head_dim"),
}
STANDARD = ("num_layers", "num_attention_heads", "hidden_size", "vocab_size")  # NormalizedTextConfig's own


class PatternEdit(BaseModel):
    class_attrs: dict[str, str] = Field(default_factory=dict)
    imports: list[tuple[str, str]] = Field(default_factory=list)  # (module, name) into model_configs.py
    patchers: list[PatcherBlock] = Field(default_factory=list)
    # the oldest transformers the edit can work with (e.g. an API it relies on), None when any will do
    min_transformers: str | None = None
    # model types whose family lists (SSM_MODELS, the modeling and test lists naming them) the new type joins
    joins: list[str] = Field(default_factory=list)
    note: str = ""
    # more model types to register the new class for, the tasks to register (None: the base's), and
    # statements for functions of other workspace modules
    also_registers: list[str] = Field(default_factory=list)
    tasks: list[str] | None = None
    module_blocks: list[ModuleBlock] = Field(default_factory=list)
    code_blocks: list[CodeBlock] = Field(default_factory=list)
    # methods of the new config class (source of a top-level def, indented into the class body)
    methods: list[str] = Field(default_factory=list)
    # the exported cache holds recurrent states but no conv state (test_edits_states.py)
    no_conv_state: bool = False


class PatternContext:
    """What a precondition may look at: the analysis, the base class as the workspace defines it, and the
    model's transformers config (built from the analysed config, so attribute maps and defaults apply)."""

    def __init__(self, analysis: dict, workspace: Path, base_class: str):
        self.analysis, self.workspace, self.base_class = analysis, Path(workspace), base_class
        self.model_type: str = analysis["model_type"]
        self.raw: dict = analysis.get("raw_text_config") or {}
        self.features: set[str] = set(analysis.get("features", []))
        # the patterns being combined: an edit may adapt to a companion pattern (set by combined_edit)
        self.selected: set[str] = set()

    @cached_property
    def base(self) -> dict[str, ast.expr]:
        return resolved_attrs(self.workspace, self.base_class, BASE_ATTRS)

    def base_name(self, attr: str) -> str | None:
        """The base's value for attr when it is a plain name (a class), else None."""
        expr = self.base.get(attr)
        return expr.id if isinstance(expr, ast.Name) else None

    @cached_property
    def config(self):
        return _model_config(self.model_type, json.dumps(self.raw, sort_keys=True, default=str))

    def exposes(self, attr: str):
        """attr as optimum's NormalizedConfig would find it on the model config (None when absent)."""
        if self.config is not None:
            return getattr(self.config, attr, None)
        return self.raw.get(attr)

    def value(self, name: str):
        """A NormalizedTextConfig attribute's value under the standard name or any alias of it."""
        found = self.exposes("num_hidden_layers" if name == "num_layers" else name)
        return found if found is not None else next(
            (self.raw[k] for k in ALIASES.get(name, ()) if self.raw.get(k) is not None), None)


@lru_cache(maxsize=32)
def _model_config(model_type: str, raw_json: str):
    """The model's transformers config built from the analysed one (cached: every base asks for it)."""
    from transformers import AutoConfig

    kwargs = {k: v for k, v in json.loads(raw_json).items()
              if k not in ("model_type", "architectures", "transformers_version", "auto_map")}
    for attempt in (kwargs, {}):
        try:
            return AutoConfig.for_model(model_type, **attempt)
        except Exception:  # noqa: BLE001 - a config transformers cannot build is read raw instead
            continue
    return None


@dataclass(frozen=True)
class Pattern:
    name: str
    summary: str
    precondition: Callable[[PatternContext], str | None]
    edit: Callable[[PatternContext], PatternEdit]


# -- normalized-config attribute mapping ------------------------------------------------------------

def _normalized_gaps(ctx: PatternContext) -> dict[str, str]:
    """NormalizedTextConfig name -> the config key that holds it, for names the config lacks."""
    if ctx.analysis.get("text_config_key") or ctx.base_name("NORMALIZED_CONFIG_CLASS") != "NormalizedTextConfig":
        return {}  # nested text configs and bases with their own mapping are out of this pattern's reach
    from tools.targets.optimum_intel.patterns import ssm_hybrid, ssm_mamba1

    if ssm_hybrid.writes_normalized_config(ctx) or ssm_mamba1.writes_normalized_config(ctx):
        return {}  # the hybrid Mamba patterns normalize a copy of the config that carries these names
    needed = list(STANDARD)
    generator = _pkv_choice(ctx) or _mla_choice(ctx) or ctx.base_name("DUMMY_PKV_GENERATOR_CLASS")
    if PKV_GENERATORS.get(generator or "", {}).get("gqa"):
        needed.append("num_key_value_heads")
    if PKV_GENERATORS.get(generator or "", {}).get("head_dim", "ignored") != "ignored":
        needed.append("head_dim")  # Mistral's reads it when the config has it, Gemma's always
    gaps = {}
    for name in needed:
        if ctx.exposes("num_hidden_layers" if name == "num_layers" else name) is not None:
            continue
        key = alias_key(name, lambda k: ctx.raw.get(k) is not None)
        if key is not None:
            gaps[name] = key
    return gaps


def alias_key(name: str, present) -> str | None:
    """The first config key among `name`'s aliases that `present(key)` accepts; a config with no
    grouped-query field has as many key/value heads as attention heads."""
    key = next((k for k in ALIASES.get(name, ()) if present(k)), None)
    if key is None and name == "num_key_value_heads":
        key = next((k for k in ALIASES["num_attention_heads"] if present(k)), None)
    return key


def _normalized_applies(ctx: PatternContext) -> str | None:
    gaps = _normalized_gaps(ctx)
    if not gaps:
        return None
    listed = ", ".join(f"{n} from `{k}`" for n, k in gaps.items())
    return f"the config does not spell what {ctx.base_class}'s normalized config reads: maps {listed}"


def _normalized_edit(ctx: PatternContext) -> PatternEdit:
    gaps = _normalized_gaps(ctx)
    args = ", ".join(f'{n}="{k}"' for n, k in gaps.items())
    if set(gaps) - set(STANDARD):
        args += ", allow_new=True"  # NormalizedTextConfig has no slot of its own for these names
    return PatternEdit(class_attrs={"NORMALIZED_CONFIG_CLASS": f"NormalizedTextConfig.with_args({args})"},
                       imports=[(NORMALIZED_MODULE, "NormalizedTextConfig")])


# -- dummy past-key-values generator ------------------------------------------------------------------

def _pkv_choice(ctx: PatternContext) -> str | None:
    """The generator the model needs when the base's would build wrongly shaped caches, else None."""
    current = ctx.base_name("DUMMY_PKV_GENERATOR_CLASS")
    if current not in PKV_GENERATORS or "mla" in ctx.features or ctx.analysis.get("text_config_key"):
        return None  # MLA caches have different key and value widths: no generic generator fits them
    # values under other names count: normalized_config_mapping maps them for the generator
    head_dim, hidden, heads, kv_heads = (ctx.value(n) for n in ("head_dim", "hidden_size", "num_attention_heads",
                                                                  "num_key_value_heads"))
    odd_head_dim = isinstance(head_dim, int) and hidden and heads and head_dim != hidden // heads
    gqa = isinstance(kv_heads, int) and heads and kv_heads != heads
    how = PKV_GENERATORS[current]
    if odd_head_dim and how["head_dim"] == "ignored":
        return "GemmaDummyPastKeyValuesGenerator"
    if head_dim is None and how["head_dim"] == "required":
        return "MistralDummyPastKeyValuesGenerator"  # falls back to hidden_size // num_attention_heads
    if gqa and not how["gqa"]:
        return "MistralDummyPastKeyValuesGenerator"
    return None


def _pkv_applies(ctx: PatternContext) -> str | None:
    choice = _pkv_choice(ctx)
    if choice is None or _input_generators(ctx, choice) is None:
        return None
    head_dim, kv = ctx.value("head_dim"), ctx.value("num_key_value_heads")
    return (f"{ctx.base_class} builds caches with {ctx.base_name('DUMMY_PKV_GENERATOR_CLASS')}, which does not "
            f"fit this config (head_dim {head_dim}, {kv} key/value heads of {ctx.value('num_attention_heads')}): "
            f"{choice} reads what it needs")


def _input_generators(ctx: PatternContext, choice: str) -> str | None:
    """The base's DUMMY_INPUT_GENERATOR_CLASSES with its cache generator swapped for `choice`."""
    expr, current = ctx.base.get("DUMMY_INPUT_GENERATOR_CLASSES"), ctx.base_name("DUMMY_PKV_GENERATOR_CLASS")
    if isinstance(expr, ast.Tuple) and all(isinstance(e, ast.Name) for e in expr.elts):
        names = [choice if e.id == current else e.id for e in expr.elts]
        if choice in names:
            return "(" + ", ".join(names) + ")"
    return None


def _generator_edit(ctx: PatternContext, choice: str) -> PatternEdit:
    tuple_source = _input_generators(ctx, choice)
    return PatternEdit(class_attrs={"DUMMY_INPUT_GENERATOR_CLASSES": tuple_source,
                                    "DUMMY_PKV_GENERATOR_CLASS": choice},
                       imports=[(GENERATOR_MODULES.get(n, GENERATORS_MODULE), n)
                                for n in ("DummyTextInputGenerator", choice) if n in tuple_source])


def _pkv_edit(ctx: PatternContext) -> PatternEdit:
    return _generator_edit(ctx, _pkv_choice(ctx))


# -- multi-head latent attention caches -----------------------------------------------------------------

def _mla_choice(ctx: PatternContext) -> str | None:
    current = ctx.base_name("DUMMY_PKV_GENERATOR_CLASS")
    if "mla" not in ctx.features or current == MLA_GENERATOR or ctx.analysis.get("text_config_key"):
        return None
    if any(not isinstance(ctx.exposes(d), int) for d in MLA_DIMS):
        return None  # the generator reads these names from the config itself
    generators = module_classes(ctx.workspace, INPUT_GENERATORS)
    return MLA_GENERATOR if MLA_GENERATOR in generators else None


def _mla_applies(ctx: PatternContext) -> str | None:
    choice = _mla_choice(ctx)
    if choice is None or _input_generators(ctx, choice) is None:
        return None
    dims = ", ".join(f"{d} {ctx.exposes(d)}" for d in MLA_DIMS)
    return (f"multi-head latent attention caches keys and values of different widths ({dims}): {choice} "
            f"builds them, {ctx.base_name('DUMMY_PKV_GENERATOR_CLASS')} cannot")


def _mla_edit(ctx: PatternContext) -> PatternEdit:
    return _generator_edit(ctx, _mla_choice(ctx))


# -- ONNX-era fallback list ---------------------------------------------------------------------------

def _onnx_applies(ctx: PatternContext) -> str | None:
    from tools.targets.optimum_intel.target import onnx_era_types

    if ctx.model_type in onnx_era_types(ctx.workspace):
        return "listed in ONNX_SUPPORTED_ARCHITECTURES: a natively registered type comes off that list"
    return None


def _onnx_edit(ctx: PatternContext) -> PatternEdit:
    # write_patch always takes the type off the list (idempotent); the pattern names that edit
    return PatternEdit(note=f"{UTILS}: {ctx.model_type} removed from ONNX_SUPPORTED_ARCHITECTURES")


NORMALIZED_CONFIG = Pattern("normalized_config_mapping", "map config keys the base's normalized config "
                            "reads under other names", _normalized_applies, _normalized_edit)
PKV_GENERATOR = Pattern("pkv_generator", "choose the dummy past-key-values generator that matches head_dim "
                        "and grouped-query attention", _pkv_applies, _pkv_edit)
MLA_PKV_GENERATOR = Pattern("mla_pkv_generator", "build MLA caches (key and value widths differ) with "
                            f"{MLA_GENERATOR}", _mla_applies, _mla_edit)
ONNX_REMOVAL = Pattern("onnx_fallback_removal", "take the type off ONNX_SUPPORTED_ARCHITECTURES",
                       _onnx_applies, _onnx_edit)


def registry() -> dict[str, Pattern]:
    """Every pattern by name, in the order their edits are merged."""
    from tools.targets.optimum_intel.patterns.dsa_indexer import DSA_INDEXER_CACHE
    from tools.targets.optimum_intel.patterns.gated_delta import GATED_DELTA_HYBRID
    from tools.targets.optimum_intel.patterns.group_ids_mask import GROUP_IDS_MASK
    from tools.targets.optimum_intel.patterns.lightning_hybrid import LIGHTNING_HYBRID
    from tools.targets.optimum_intel.patterns.moe import FLAT_OUTPUT, MOE_BATCHED_MM
    from tools.targets.optimum_intel.patterns.moe_granite import GRANITE_EXPERTS
    from tools.targets.optimum_intel.patterns.moe_grouped import GROUPED_GEMM
    from tools.targets.optimum_intel.patterns.moe_identity import IDENTITY_EXPERTS
    from tools.targets.optimum_intel.patterns.moe_ungated import UNGATED_EXPERTS
    from tools.targets.optimum_intel.patterns.nested_text import NESTED_TEXT_CONFIG
    from tools.targets.optimum_intel.patterns.no_cache import NO_KV_CACHE
    from tools.targets.optimum_intel.patterns.normalized_args import NORMALIZED_ARGS
    from tools.targets.optimum_intel.patterns.padding_positions import PADDING_IDX_POSITIONS
    from tools.targets.optimum_intel.patterns.ssm_hybrid import HYBRID_MAMBA2
    from tools.targets.optimum_intel.patterns.ssm_mamba1 import HYBRID_MAMBA1
    from tools.targets.optimum_intel.patterns.text_submodel import TEXT_SUBMODEL

    # the DSA indexer's cache first: its generator and patcher (built on the MoE one) win over theirs
    return {p.name: p for p in (DSA_INDEXER_CACHE, MOE_BATCHED_MM, FLAT_OUTPUT, GRANITE_EXPERTS, GROUPED_GEMM,
                                IDENTITY_EXPERTS, UNGATED_EXPERTS, TEXT_SUBMODEL, NESTED_TEXT_CONFIG, PKV_GENERATOR,
                                MLA_PKV_GENERATOR, NORMALIZED_CONFIG, NORMALIZED_ARGS, ONNX_REMOVAL, HYBRID_MAMBA2,
                                HYBRID_MAMBA1, GATED_DELTA_HYBRID, NO_KV_CACHE, PADDING_IDX_POSITIONS, GROUP_IDS_MASK,
                                LIGHTNING_HYBRID)}


def applicable(ctx: PatternContext) -> list[tuple[str, str]]:
    """(pattern name, why) for each pattern whose precondition holds for this model and base."""
    out = []
    for name, pattern in registry().items():
        reason = pattern.precondition(ctx)
        if reason:
            out.append((name, reason))
    return out


def combined_edit(ctx: PatternContext, names: list[str]) -> PatternEdit:
    """The edits of the named patterns merged; a later pattern never overrides an earlier attribute."""
    patterns, out = registry(), PatternEdit()
    notes = []
    ctx.selected = set(names)
    for name in names:
        if name not in patterns:
            raise ValueError(f"unknown pattern {name!r}; known: {', '.join(patterns)}")
        edit = patterns[name].edit(ctx)
        for attr, source in edit.class_attrs.items():
            out.class_attrs.setdefault(attr, source)
        out.imports += [i for i in edit.imports if i not in out.imports]
        out.patchers += edit.patchers
        out.joins += [j for j in edit.joins if j not in out.joins]
        out.also_registers += [m for m in edit.also_registers if m not in out.also_registers]
        out.tasks = out.tasks or edit.tasks
        out.module_blocks += [b for b in edit.module_blocks if b not in out.module_blocks]
        out.code_blocks += [c for c in edit.code_blocks if c not in out.code_blocks]
        out.methods += [m for m in edit.methods if m not in out.methods]
        out.no_conv_state = out.no_conv_state or edit.no_conv_state
        if edit.min_transformers and (not out.min_transformers
                                      or Version(edit.min_transformers) > Version(out.min_transformers)):
            out.min_transformers = edit.min_transformers
        notes.append(f"pattern {name}: {edit.note or patterns[name].summary}")
    out.note = "; ".join(notes)
    return out
