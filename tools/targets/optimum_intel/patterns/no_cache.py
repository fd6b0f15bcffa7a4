"""Causal LMs whose forward takes no key/value cache (openai-gpt; xlnet's `mems`, reformer's hashed buckets
are their own formats, not `past_key_values`).

optimum-intel exports a decoder for "text-generation-with-past" by feeding dummy `past_key_values` into the
forward: a model that has no such argument cannot be exported that way ("Config dummy inputs are not a
subset of the model inputs"). What it can be is what upstream already offers every decoder: the
"text-generation" export, without a cache, which `OVModelForCausalLM(use_cache=False)` generates with by
running the whole sequence at each step (as transformers does for these models). The pattern registers
only that task; the repository's tests for it are edited by test_edits_no_cache.py.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit

TASKS = ["text-generation"]
# forward arguments through which a causal LM takes a cache optimum-intel knows how to export: the key/value
# cache, and the conv/recurrent states of the state-space models (patterns/ssm_hybrid.py)
EXPORTABLE_CACHES = ("past_key_values", "cache_params")
# the model's own cache formats, named in the note so a reviewer sees what the export leaves out
OTHER_CACHES = ("mems", "past_buckets_states", "cache", "state")


@lru_cache(maxsize=64)
def forward_arguments(model_type: str) -> tuple[str, tuple[str, ...]] | None:
    """(class name, forward's argument names) of transformers' causal-LM class for model_type, or None
    when transformers has none (or it does not import here)."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if not isinstance(name, str):
        return None
    try:
        cls = getattr(transformers, name)
        return name, tuple(inspect.signature(cls.forward).parameters)
    except (AttributeError, ImportError, ValueError, TypeError):
        return None


def _applies(ctx: PatternContext) -> str | None:
    found = forward_arguments(ctx.model_type)
    if found is None or any(arg in found[1] for arg in EXPORTABLE_CACHES):
        return None
    own = [a for a in OTHER_CACHES if a in found[1]]
    also = f" (its own cache, `{'`, `'.join(own)}`, is not a key/value cache)" if own else ""
    return (f"{found[0]}.forward takes no past_key_values{also}: exported for text-generation only, "
            "without a KV cache")


def _edit(ctx: PatternContext) -> PatternEdit:
    found = forward_arguments(ctx.model_type)
    name = found[0] if found else ctx.model_type
    return PatternEdit(tasks=list(TASKS), note=(
        f"{name}.forward takes no past_key_values: registered for text-generation only (no KV cache); "
        "OVModelForCausalLM loads it with use_cache=False and re-runs the whole sequence at each generation "
        "step, as transformers does. The decoder tests get SUPPORTED_ARCHITECTURES_WITHOUT_CACHE and "
        "test_compare_to_transformers_without_cache (test_compare_to_transformers asserts a cache); the CLI "
        "test registers the text-generation task"))


NO_KV_CACHE = Pattern("no_kv_cache", "register a causal LM whose forward takes no past_key_values for "
                      "text-generation only (exported without a KV cache)", _applies, _edit)


def export_task(workspace, model_type: str) -> str:
    """The task to export and verify model_type with, as the workspace registers it: "text-generation" for a
    type registered without "text-generation-with-past", else (and when unreadable) the cached one."""
    import ast
    from pathlib import Path

    from tools.targets.optimum_intel.patch import MODEL_CONFIGS, _registrations

    try:
        tree = ast.parse((Path(workspace) / MODEL_CONFIGS).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return "text-generation-with-past"
    tasks = [t for regs in _registrations(tree).values() for mt, ts in regs if mt == model_type for t in ts]
    return "text-generation" if "text-generation" in tasks and "text-generation-with-past" not in tasks \
        else "text-generation-with-past"
