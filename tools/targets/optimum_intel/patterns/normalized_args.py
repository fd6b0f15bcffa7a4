"""Remap a base's own normalized-config mapping to the keys the new model's config has.

normalized_config_mapping adds a mapping to bases whose NORMALIZED_CONFIG_CLASS is plain NormalizedTextConfig.
Fifteen optimum-intel bases (Mistral among them, a generic dense base the search always offers) already say
`NormalizedTextConfig.with_args(...)`, naming keys of their own model's config: Mistral maps
num_key_value_heads to `num_key_value_heads`. A model whose config has no such key (multi-head attention with
the heads under num_attention_heads, or names like n_head) then fails export with "Could not find the
attribute named ... in the normalized config". This pattern keeps the base's mapping and points each name
the model's config cannot answer at the key that holds it (the same aliases normalized_config_mapping
uses); names the config answers stay as the base wrote them.
"""

from __future__ import annotations

import ast

from tools.targets.optimum_intel.patterns.base import (NORMALIZED_MODULE, PKV_GENERATORS, STANDARD, Pattern,
                                                       PatternContext, PatternEdit, _mla_choice, _pkv_choice, alias_key)

NORMALIZED = "NormalizedTextConfig"
# the key NormalizedTextConfig reads for a name when with_args does not map it
DEFAULT_KEYS = {"num_layers": "num_hidden_layers"}


def base_args(ctx: PatternContext) -> dict[str, object] | None:
    """The keyword arguments of the base's `NormalizedTextConfig.with_args(...)`, None for any other form."""
    expr = ctx.base.get("NORMALIZED_CONFIG_CLASS")
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "with_args"
            and isinstance(expr.func.value, ast.Name) and expr.func.value.id == NORMALIZED and not expr.args):
        return None
    if not all(k.arg and isinstance(k.value, ast.Constant) for k in expr.keywords):
        return None  # a computed value: nothing this pattern can reason about
    return {k.arg: k.value.value for k in expr.keywords}


def _answers(ctx: PatternContext, key: str) -> bool:
    # the normalized config reads the model config by getattr, so attribute maps and defaults count
    return ctx.exposes(key) is not None or ctx.raw.get(key) is not None


def remapped(ctx: PatternContext) -> dict[str, str]:
    """name -> the model's config key, for each name the base maps (or reads) under a key the config lacks."""
    args = base_args(ctx)
    if args is None or ctx.analysis.get("text_config_key"):
        return {}
    needed = list(STANDARD) + [n for n in args if n != "allow_new" and n not in STANDARD]
    generator = _pkv_choice(ctx) or _mla_choice(ctx) or ctx.base_name("DUMMY_PKV_GENERATOR_CLASS")
    how = PKV_GENERATORS.get(generator or "", {})
    if how.get("gqa") and "num_key_value_heads" not in needed:
        needed.append("num_key_value_heads")
    out = {}
    for name in needed:
        current = args.get(name, DEFAULT_KEYS.get(name, name))
        if not isinstance(current, str) or _answers(ctx, current):
            continue
        key = alias_key(name, lambda k: _answers(ctx, k))
        if key is not None and key != current:
            out[name] = key
    return out


def _applies(ctx: PatternContext) -> str | None:
    found = remapped(ctx)
    if not found:
        return None
    args = base_args(ctx) or {}
    listed = ", ".join(f"{n} from `{k}` (the base reads `{args.get(n, DEFAULT_KEYS.get(n, n))}`)"
                       for n, k in found.items())
    return f"{ctx.base_class}'s own normalized-config mapping names keys this config lacks: maps {listed}"


def _edit(ctx: PatternContext) -> PatternEdit:
    args, found = dict(base_args(ctx) or {}), remapped(ctx)
    allow_new = bool(args.pop("allow_new", False)) or bool(set(found) - set(STANDARD))
    merged = {**args, **found}
    source = ", ".join(f'{n}="{v}"' if isinstance(v, str) else f"{n}={v!r}" for n, v in merged.items())
    if allow_new:
        source += ", allow_new=True"  # NormalizedTextConfig has no slot of its own for these names
    return PatternEdit(class_attrs={"NORMALIZED_CONFIG_CLASS": f"{NORMALIZED}.with_args({source})"},
                       imports=[(NORMALIZED_MODULE, NORMALIZED)],
                       note=f"{ctx.base_class}'s mapping kept; " + ", ".join(f"{n} from `{k}`"
                                                                               for n, k in found.items()))


NORMALIZED_ARGS = Pattern("normalized_args_remap", "point the base's own normalized-config mapping at the keys "
                          "this config has", _applies, _edit)
