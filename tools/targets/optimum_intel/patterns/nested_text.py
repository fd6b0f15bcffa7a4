"""Normalized config of a causal LM that takes the composite config and builds its language model from the
nested text config (fuyu: `FuyuForCausalLM(FuyuConfig)` builds its Persimmon from `text_config`).

The dummy inputs and caches must follow the nested config, the one the model runs with, not whatever the
composite config also carries at top level (which may be absent or stale). optimum reads dotted names through
the sub-config (`NormalizedTextConfig.with_args(num_layers="text_config.num_hidden_layers")`, the way
optimum-intel's Gemma3 text encoder maps them), so the pattern maps every name the base's normalized config and
cache generator read to the nested config's own key for it.
"""

from __future__ import annotations

from tools.targets.optimum_intel.patterns.base import (ALIASES, NORMALIZED_MODULE, PKV_GENERATORS, STANDARD, Pattern,
                                                       PatternContext, PatternEdit)
from tools.targets.optimum_intel.patterns.text_submodel import causal_config_type


def nested_keys(ctx: PatternContext) -> dict[str, str]:
    """NormalizedTextConfig name -> dotted key into the nested text config ({} when the pattern does not fit)."""
    key = ctx.analysis.get("text_config_key")
    if not key or ctx.base_name("NORMALIZED_CONFIG_CLASS") != "NormalizedTextConfig":
        return {}
    if causal_config_type(ctx.model_type) != ctx.model_type:
        return {}  # the causal LM takes the sub-config itself (text_submodel's case) or is unknown
    needed = list(STANDARD)
    how = PKV_GENERATORS.get(ctx.base_name("DUMMY_PKV_GENERATOR_CLASS") or "", {})
    if how.get("gqa"):
        needed.append("num_key_value_heads")
    if how.get("head_dim", "ignored") != "ignored":
        needed.append("head_dim")
    out = {}
    for name in needed:
        found = next((k for k in ALIASES[name] if ctx.raw.get(k) is not None), None)
        if found is None and name == "num_key_value_heads":
            found = next((k for k in ALIASES["num_attention_heads"] if ctx.raw.get(k) is not None), None)
        if found is None and name in STANDARD:
            return {}  # the nested config does not hold what the dummy inputs need
        if found is not None:
            out[name] = f"{key}.{found}"
    return out


def _applies(ctx: PatternContext) -> str | None:
    keys = nested_keys(ctx)
    if not keys:
        return None
    return (f"{ctx.model_type}'s causal LM runs the language model of its `{ctx.analysis['text_config_key']}`: "
            f"dummy inputs and caches read {', '.join(keys.values())}")


def _edit(ctx: PatternContext) -> PatternEdit:
    keys = nested_keys(ctx)
    args = ", ".join(f'{n}="{k}"' for n, k in keys.items())
    if set(keys) - set(STANDARD):
        args += ", allow_new=True"
    return PatternEdit(class_attrs={"NORMALIZED_CONFIG_CLASS": f"NormalizedTextConfig.with_args({args})"},
                       imports=[(NORMALIZED_MODULE, "NormalizedTextConfig")])


NESTED_TEXT_CONFIG = Pattern("nested_text_config", "read the normalized config from the nested text config the "
                             "causal LM runs with", _applies, _edit)
