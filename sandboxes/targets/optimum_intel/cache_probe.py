"""Is transformers' own cached generation faithful to its uncached forward, where no window is involved?

When OpenVINO's generation matched only the eager, uncached reference (verify._EagerReference), the
repository's test_compare_to_transformers, which compares with transformers' default cached generate(),
fails. Upstream keeps a list of models whose generation that test compares with use_cache=False; a model
belongs there only if transformers' cache path itself departs from the model: its cached generate()
differs from its own uncached one on a sequence shorter than every window (git adds the cache length to
positions generate() already counted), while its uncached one is the eager reference OpenVINO matched.
A difference that only shows beyond a sliding window (moshi: the cache evicts keys its full causal mask
still shows) is not that, and stays a failure of the tests. Nor is a default attention that is not the
model's, unless measured non-causal (causality()): changing only a prompt's last token moves earlier
positions' logits under the default (sdpa) implementation while eager stays causal (doge, glm_moe_dsa:
sdpa drops the causal mask because the model always passes its own). Then transformers' default path is
broken, not the export: the repository's tests load their reference with eager attention, and the cache
probe measures the eager model. Standard library only at import: this runs inside the sandbox.
"""

from __future__ import annotations

PROMPT_TOKENS = 4
NEW_TOKENS = 8


def probe(pt_model, eager, input_ids, window: int | None, pad_token_id) -> dict:
    """{"compare_uncached": bool, ...}: whether the repository's tests should compare generation uncached.

    `eager`: the eager, uncached reference (verify._EagerReference); `input_ids`: a (1, n) prompt."""
    import torch

    ids = input_ids[:, :PROMPT_TOKENS]
    new = NEW_TOKENS if not window else max(1, min(NEW_TOKENS, int(window) - ids.shape[1]))
    feeds = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    gen = dict(do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=pad_token_id)
    try:
        with torch.no_grad():
            cached = pt_model.generate(**feeds, **gen).tolist()
            uncached = pt_model.generate(**feeds, **gen, use_cache=False).tolist()
        reference = eager.generate(feeds, gen)
    except Exception as exc:  # noqa: BLE001 - unmeasured means no registration: the tests then decide
        return {"compare_uncached": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"compare_uncached": cached != uncached and uncached == reference, "length": ids.shape[1] + new,
            "window": window, "cached_equals_uncached": cached == uncached,
            "uncached_equals_eager": uncached == reference}


def causality(pt_model, eager, input_ids, tol: float) -> dict:
    """{"default_noncausal": bool, ...}: whether the default attention lets a position see later tokens.

    Only the prompt's last token is changed; the logits of every earlier position must not move. Fires
    when they move beyond `tol` under `pt_model` (the default implementation) but not under the eager
    reference (verify._EagerReference): a model whose eager path is not causal either is simply not causal."""
    import torch

    ids = input_ids[:, :max(2, PROMPT_TOKENS)]
    if ids.shape[1] < 2:
        return {"default_noncausal": False, "error": "a prompt of one token has no earlier position"}
    other = ids.clone()
    other[0, -1] = 3 if int(ids[0, -1]) != 3 else 4  # any other real token id

    def shift(logits_of) -> float:
        feeds = [{"input_ids": x, "attention_mask": torch.ones_like(x)} for x in (ids, other)]
        a, b = (logits_of(f)[:, :-1] for f in feeds)
        return float((a - b).abs().max())

    try:
        with torch.no_grad():
            default = shift(lambda f: pt_model(**f, use_cache=False).logits)
        reference = shift(eager.logits)
    except Exception as exc:  # noqa: BLE001 - unmeasured means not declared broken: the checks then decide
        return {"default_noncausal": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"default_noncausal": default > tol and reference <= tol, "default_shift": default,
            "eager_shift": reference, "tolerance": tol, "length": ids.shape[1]}
