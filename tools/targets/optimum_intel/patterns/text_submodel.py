"""The text model of a composite family (emu3, mllama): registered under its own model type, the way
optimum-intel registers `gemma3_text` or `qwen3_vl_text`, and exported with a config the runtime can read.

transformers builds such a family's causal LM from the text sub-config of the composite checkpoint
(`AutoModelForCausalLM` hands `Emu3ForCausalLM` the `emu3_text_model` config), so optimum-intel's exporter
looks the export config up under the sub-config's model type, while its CLI checks the checkpoint's: the new
class is registered for both, for the text-generation tasks only (the family's other auto classes take the
composite config and are not this model). When transformers' AutoConfig does not know the sub-config's type,
the exported config.json would be unreadable; the pattern then has main_export keep the checkpoint's own config,
from which AutoModelForCausalLM rebuilds the same class.

Everything is read from the model: the nested config's model type and the causal-LM class's config class.
"""

from __future__ import annotations

from functools import lru_cache

from tools.targets.optimum_intel.patch import CodeBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit

MAIN = "optimum/exporters/openvino/__main__.py"
TEXT_TASKS = ["text-generation", "text-generation-with-past"]
MARKER = "AutoConfig cannot read back"
KEEP_CHECKPOINT_CONFIG = f'''\
if library_name == "transformers" and model.config.model_type != config.model_type:
    from transformers import CONFIG_MAPPING

    if model.config.model_type not in CONFIG_MAPPING:
        # a causal LM built from the text sub-config of a composite checkpoint saved that sub-config, which
        # {MARKER}: keep the checkpoint's config, from which AutoModelForCausalLM builds the model
        config.save_pretrained(output)
'''


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
    blocks = [] if config_known(sub) else [
        CodeBlock(file=MAIN, function="main_export", after_call="export_from_model", source=KEEP_CHECKPOINT_CONFIG,
                  marker=MARKER)]
    note = f"registered for {ctx.model_type} and its text sub-model {sub} ({', '.join(TEXT_TASKS)})"
    if blocks:
        note += f"; {MAIN}: main_export saves the checkpoint's config when the sub-config's type is unknown"
    return PatternEdit(also_registers=[sub], tasks=list(TEXT_TASKS), code_blocks=blocks, note=note)


TEXT_SUBMODEL = Pattern("text_submodel", "register a composite family's text sub-model and export it with a "
                        "config AutoConfig reads", _applies, _edit)
