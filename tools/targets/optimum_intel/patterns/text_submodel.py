"""The text model of a composite family (emu3, mllama): registered under its own model type, the way
optimum-intel registers `gemma3_text` or `qwen3_vl_text`, and exported with a config the runtime can read.

transformers builds such a family's causal LM from the text sub-config of the composite checkpoint
(`AutoModelForCausalLM` hands `Emu3ForCausalLM` the `emu3_text_model` config), so optimum-intel's exporter
looks the export config up under the sub-config's model type, while its CLI checks the checkpoint's: the new
class is registered for both, for the text-generation tasks only (the family's other auto classes take the
composite config and are not this model). The exported config.json is the sub-config (what the model carries);
when transformers' AutoConfig does not know its type, optimum's loader could not read it back, so the pattern
has OVBaseModel.from_pretrained read it with the config class of the model class it names, as transformers'
own `Emu3ForCausalLM.from_pretrained` does.

Everything is read from the model: the nested config's model type and the causal-LM class's config class.
"""

from __future__ import annotations

from functools import lru_cache

from tools.targets.optimum_intel.patch import CodeBlock, ModuleBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit

MODELING_BASE = "optimum/intel/openvino/modeling_base.py"
TEXT_TASKS = ["text-generation", "text-generation-with-past"]
HELPER = "_text_submodel_config"
MARKER = f"config = {HELPER}("
# read the IR's config.json the way transformers' own class reads it: optimum's loader asks AutoConfig, which does
# not know the sub-config's type; upstream's fallback for types AutoConfig misses sits in the same place
# (_maybe_register_remote_code_model)
HELPER_SOURCE = f'''\
def {HELPER}(model_id, subfolder="", revision=None, token=None, cache_dir=None, local_files_only=False):
    """The config of a model whose type AutoConfig does not know but whose class transformers has: the text model
    of a composite family (`Emu3ForCausalLM` saves its `emu3_text_model` sub-config), read by that class's own
    config class. None for every other model."""
    import transformers
    from transformers import CONFIG_MAPPING

    kwargs = {{"subfolder": subfolder, "revision": revision, "token": token, "cache_dir": cache_dir}}
    kwargs["local_files_only"] = local_files_only
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(model_id, **kwargs)
    except Exception:
        return None
    model_type = config_dict.get("model_type")
    if model_type is None or model_type in CONFIG_MAPPING or "auto_map" in config_dict:
        return None
    for architecture in config_dict.get("architectures") or []:
        config_class = getattr(getattr(transformers, architecture, None), "config_class", None)
        if getattr(config_class, "model_type", None) == model_type:
            return config_class.from_pretrained(model_id, **kwargs)
    return None
'''
LOAD_WITH_HELPER = f"""\
if config is None:
    {MARKER}model_id, subfolder, revision, token, cache_dir, local_files_only)
"""
ANCHOR = "_maybe_register_remote_code_model"  # what from_pretrained calls first, and the helper follows


@lru_cache(maxsize=64)
def causal_config_type(model_type: str) -> str | None:
    """The model type of the config transformers builds the family's causal LM from (None: unknown)."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    try:
        cls = getattr(transformers, name) if name else None
    except (ImportError, AttributeError):  # a class the installed transformers cannot import
        return None
    return getattr(getattr(cls, "config_class", None), "model_type", None) or None


def config_known(model_type: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


def text_type(ctx: PatternContext) -> str | None:
    """The text sub-model's type when the causal LM is built from the nested text config, else None."""
    from tools.targets.optimum_intel.target import read_registry

    sub = ctx.raw.get("model_type") if ctx.analysis.get("text_config_key") else None
    if not isinstance(sub, str) or sub == ctx.model_type or causal_config_type(ctx.model_type) != sub:
        return None
    registry = read_registry(ctx.workspace)
    # registered by another class: not ours to register (by the class of this very patch: a rewrite)
    return None if sub in registry and registry[sub] != registry.get(ctx.model_type) else sub


def _applies(ctx: PatternContext) -> str | None:
    sub = text_type(ctx)
    if sub is None:
        return None
    why = (f"transformers builds {ctx.model_type}'s causal LM from its `{ctx.analysis['text_config_key']}` "
           f"({sub}): the export config is looked up under {sub}, the CLI checks {ctx.model_type}")
    if not config_known(sub):
        why += f"; AutoConfig does not know {sub}, so the IR keeps the checkpoint's config"
    return why


def _edit(ctx: PatternContext) -> PatternEdit:
    sub = text_type(ctx)
    note = f"registered for {ctx.model_type} and its text sub-model {sub} ({', '.join(TEXT_TASKS)})"
    if config_known(sub):
        return PatternEdit(also_registers=[sub], tasks=list(TEXT_TASKS), note=note)
    helper = ModuleBlock(file=MODELING_BASE, after=ANCHOR, source=HELPER_SOURCE)
    load = CodeBlock(file=MODELING_BASE, function="OVBaseModel.from_pretrained", after_call=ANCHOR,
                     source=LOAD_WITH_HELPER, marker=MARKER)
    note += (f"; {MODELING_BASE}: OVBaseModel.from_pretrained reads a config AutoConfig does not know ({sub}) "
             "with the config class of the model class it names")
    return PatternEdit(also_registers=[sub], tasks=list(TEXT_TASKS), module_blocks=[helper], code_blocks=[load],
                       note=note)


TEXT_SUBMODEL = Pattern("text_submodel", "register a composite family's text sub-model and export it with a "
                        "config AutoConfig reads", _applies, _edit)
