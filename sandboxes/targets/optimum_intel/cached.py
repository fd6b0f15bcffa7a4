"""Cached decode against the full forward, for models that carry state beyond a key/value cache.

A state-space or hybrid model's export carries conv and recurrent states (`cache_params.*`) from one call to
the next. The parity prompts run the model once over each whole prompt, so a state that is written wrongly,
or read from the wrong layer, is only seen when decoding continues from it. This check prefills part of a
sequence, then feeds the rest one token at a time through OpenVINO's own generate() (each step forced to the
sequence's next token, so both sides see the same tokens) and compares every step's logits with one PyTorch
forward over the whole sequence.

Only the standard library and the verification stack are imported here (this runs in the sandbox).
"""

from __future__ import annotations

import re

STATE_MARK = "cache_params"  # how optimum-intel names conv/recurrent states in an exported decoder
# a per-layer cache tensor other than the key and the value (e.g. a sparse-attention indexer's keys)
_EXTRA_CACHE = re.compile(r"(?:past_key_values|present)\.\d+\.(?!(?:key|value)(?:\b|present|$))\w+")


def carries_states(ov_model) -> bool:
    """Whether the exported model keeps conv/recurrent states, or per-layer cache tensors besides keys and
    values (stateful: as variables, else as inputs)."""
    names = list(getattr(ov_model, "input_names", {}) or {})
    try:
        names += [s.name for s in ov_model.request.query_state()] if ov_model.request is not None else []
    except AttributeError:
        pass
    if not names and getattr(ov_model, "model", None) is not None:
        names = [op.get_variable_id() for op in ov_model.model.get_ops()
                 if op.get_type_name() == "ReadValue" and hasattr(op, "get_variable_id")]
    return any(STATE_MARK in n or _EXTRA_CACHE.search(n) for n in names)


def ov_feeds(ov_model, feeds: dict) -> dict:
    """feeds without position ids when the export computes them itself (optimum-intel's state-space
    decoder rejects them): rotary positions are relative, so the comparison is unchanged."""
    if "position_ids" in feeds and "position_ids" not in (getattr(ov_model, "input_names", None) or {}):
        return {k: v for k, v in feeds.items() if k != "position_ids"}
    return feeds


def _forced(sequence):
    """A logits processor that makes greedy search pick the sequence's next token at every step."""
    import torch
    from transformers import LogitsProcessor

    class Forced(LogitsProcessor):
        def __call__(self, input_ids, scores):
            target = sequence[:, input_ids.shape[1]].to(scores.device)
            out = torch.full_like(scores, float("-inf"))
            out.scatter_(1, target[:, None], 0.0)
            return out

    return Forced()


def cached_decode(pt_model, ov_model, ids, tol: float, prefill: int | None = None, eager=None) -> dict:
    """Check dict (name, status, detail, metrics) for OpenVINO's step-by-step logits against PyTorch's
    full forward over `ids` (1 x length); when transformers' default path is the one that disagrees, against
    `eager` (the model as written: eager attention, no cache; verify._EagerReference) instead."""
    import torch
    from transformers import LogitsProcessorList

    length = ids.shape[1]
    prefill = prefill or max(2, length // 2)
    steps = length - prefill
    with torch.no_grad():
        full = pt_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0]
    out = ov_model.generate(input_ids=ids[:, :prefill], attention_mask=torch.ones_like(ids[:, :prefill]),
                            max_new_tokens=steps, min_new_tokens=steps, do_sample=False, num_beams=1,
                            logits_processor=LogitsProcessorList([_forced(ids)]), output_logits=True,
                            return_dict_in_generate=True, pad_token_id=0)
    fed = out.sequences[0, prefill:].tolist() == ids[0, prefill:].tolist()
    # logits of step k predict token prefill + k: the full forward's row prefill + k - 1
    step_logits = torch.stack([torch.as_tensor(s[0]) for s in out.logits]).float()
    per_step = (step_logits - full[prefill - 1:prefill - 1 + steps]).abs().amax(dim=-1)
    worst = default_worst = float(per_step.max())
    reference = "default"
    if worst > tol and eager is not None:
        model_as_written = eager.logits({"input_ids": ids, "attention_mask": torch.ones_like(ids)})[0]
        eager_steps = (step_logits - model_as_written[prefill - 1:prefill - 1 + steps]).abs().amax(dim=-1)
        if float(eager_steps.max()) <= tol:
            per_step, worst, reference = eager_steps, float(eager_steps.max()), "eager_no_cache"
    first = next((k for k, d in enumerate(per_step.tolist()) if d > tol), None)
    ok = fed and worst <= tol
    detail = (f"prefill {prefill} + {steps} single-token steps through generate(): max |Δlogits| {worst:.3g} "
              f"against one forward over all {length} tokens (tolerance {tol:g})")
    if reference != "default":
        detail += f" of the eager, uncached reference (transformers' default path: {default_worst:.3g})"
    if not fed:
        detail += "; the forced tokens were not the ones decoded"
    elif first is not None:
        detail += f"; first step above it: {first}"
    return {"name": "cached_decode", "status": "passed" if ok else "failed", "detail": detail,
            "metrics": {"max_abs_diff": worst, "reference": reference, "default_max_abs_diff": default_worst,
                        "prefill": prefill, "steps": steps, "first_step_over": first,
                        "per_step": [round(float(d), 8) for d in per_step]}}


def decode_check(task: str, pt_model, ov_model, ids, tol: float, eager=None) -> dict | None:
    """The cached-decode check the export calls for: skipped, with its reason, for an export without a KV
    cache (a reader must not take its absence for a pass); run for conv/recurrent states; None for a plain
    key/value cache, which the greedy and padded-batch generation already decode through."""
    if not task.endswith("-with-past"):
        return {"name": "cached_decode", "status": "skipped", "metrics": {"task": task},
                "detail": f"exported for {task}, without a KV cache: every generation step re-runs the whole "
                          "sequence, there is no cached decoding to compare"}
    if carries_states(ov_model):
        return cached_decode(pt_model, ov_model, ids, tol, eager=eager)
    return None
