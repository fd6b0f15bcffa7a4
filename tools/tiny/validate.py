"""Checks a saved tiny model must pass before anything downstream may trust it.

A random model can be silently useless: NaNs from an unstable init, logits identical at every position,
greedy decoding stuck on one token (then token-by-token comparisons prove nothing), or a router that
sends everything to one expert (then the expert dispatch is never exercised). Each check names the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.tiny.model import PROMPTS

NEW_TOKENS = 8


def run_checks(path: Path) -> dict:
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    problems: list[str] = []
    report: dict = {"ok": False, "problems": problems}
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = load_as_exported(path)
        model.eval()
    except Exception as exc:  # noqa: BLE001 - any load failure is the finding
        problems.append(f"reload failed: {type(exc).__name__}: {str(exc)[:400]}")
        return report
    config = model.config
    report["loaded_as"] = {"model_type": _saved_model_type(path), "class": type(model).__name__,
                           "config_class": type(config).__name__}
    vocab = _vocab(config)
    enc = tok(list(PROMPTS), return_tensors="pt", padding=True)
    if int(enc.input_ids.max()) >= vocab:
        problems.append(f"tokenizer emits id {int(enc.input_ids.max())} >= vocab_size {vocab}")
        return report
    rows = int(getattr(config, "num_codebooks", 0) or 1)  # musicgen decoders take one row per codebook
    ids, mask = enc.input_ids.repeat_interleave(rows, 0), enc.attention_mask.repeat_interleave(rows, 0)
    num_experts, top_k = _moe_shape(config)
    hooks, routed = _attach_router_hooks(model, num_experts, top_k)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask if rows == 1 else None).logits
    except Exception as exc:  # noqa: BLE001
        problems.append(f"forward failed: {type(exc).__name__}: {str(exc)[:300]}")
        return report
    finally:
        for h in hooks:
            h.remove()
    _check_logits(logits, report, problems)
    if num_experts:
        report["experts"] = {"num_experts": num_experts, "top_k": top_k, "used": sorted(routed)}
        if not routed:
            report["experts"]["note"] = "no router output recognised; expert use not measured"
        elif len(routed) < 2:
            problems.append(f"only expert {sorted(routed)} was routed to on the validation input")
    _check_generation(model, tok, enc, rows, report, problems)
    report["ok"] = not problems
    return report


def _check_logits(logits, report: dict, problems: list[str]) -> None:
    import torch

    report["logits_shape"] = list(logits.shape)
    report["finite"] = bool(torch.isfinite(logits).all())
    if not report["finite"]:
        problems.append("logits contain NaN or inf")
        return
    report["logits_std"] = float(logits.std())
    across_vocab = float(logits[:, -1].std(dim=-1).min())
    across_pos = float((logits[0, 1:] - logits[0, :-1]).abs().max()) if logits.shape[1] > 1 else 1.0
    if across_vocab < 1e-6:
        problems.append("logits are constant across the vocabulary")
    if across_pos < 1e-7:
        problems.append("logits are identical at every position")


def _check_generation(model, tok, enc, rows: int, report: dict, problems: list[str]) -> None:
    """Greedy decoding: batched with left padding, else one prompt at a time (with, then without cache),
    else a plain argmax loop over forward passes for classes whose own generate() is broken."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    singles = [tok(p, return_tensors="pt").input_ids.repeat_interleave(rows, 0) for p in PROMPTS]
    attempts = []
    if rows == 1:
        attempts.append(("batched", lambda: _greedy(model, enc.input_ids, enc.attention_mask, pad)))
    attempts += [
        ("one prompt at a time", lambda: [r for ids in singles for r in _greedy(model, ids, None, pad)]),
        ("one prompt at a time, no cache",
         lambda: [r for ids in singles for r in _greedy(model, ids, None, pad, use_cache=False)]),
        ("argmax loop over forward passes", lambda: [r for ids in singles for r in _argmax_loop(model, ids)]),
    ]
    errors = []
    for how, run in attempts:
        try:
            new = run()
        except Exception as exc:  # noqa: BLE001 - try the next, simpler way
            errors.append(f"{how}: {type(exc).__name__}: {str(exc)[:160]}")
            continue
        report["generation"] = how
        if errors:
            report["generation_note"] = "; ".join(errors)
        report["generated"] = new
        distinct = {t for row in new for t in row}
        report["distinct_generated"] = len(distinct)
        if len(distinct) < 2:
            problems.append(f"greedy generation repeats one token ({next(iter(distinct), None)}) for every prompt")
        return
    problems.append("generation failed every way: " + "; ".join(errors))


def _greedy(model, input_ids, attention_mask, pad, *, use_cache: bool = True) -> list[list[int]]:
    import torch

    kwargs = {"attention_mask": attention_mask} if attention_mask is not None else {}
    if not use_cache:
        kwargs["use_cache"] = False
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, do_sample=False, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, pad_token_id=pad, **kwargs)
    return out[:, input_ids.shape[1]:].tolist()


def _argmax_loop(model, input_ids) -> list[list[int]]:
    import torch

    ids = input_ids
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            nxt = model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids[:, input_ids.shape[1]:].tolist()


class RoundTripError(RuntimeError):
    """The saved directory does not load back, through the auto classes, as the model that was built."""


def load_as_exported(path: Path):
    """The model as optimum's main_export and the parity check load it: AutoConfig, then
    AutoModelForCausalLM. It must be the class named in `architectures` with every saved weight used;
    anything else means export and parity would run on a different model than the one validated."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001
        raise RoundTripError(f"AutoConfig cannot read config.json (model_type {_saved_model_type(path)!r}): "
                             f"{type(exc).__name__}: {exc}") from None
    try:
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise RoundTripError(f"AutoModelForCausalLM cannot load a {type(config).__name__}"
                             f"{_slot_hint(config)}: {type(exc).__name__}: {exc}") from None
    archs = config.architectures or []
    built = archs[0] if archs and hasattr(transformers, archs[0]) else None
    if built and type(model).__name__ != built:
        raise RoundTripError(f"AutoModelForCausalLM loads {type(model).__name__}, not the {built} that was built")
    bad = {k: sorted(map(str, v))[:5] for k, v in (info or {}).items() if v and k != "error_msgs"}
    if bad:
        raise RoundTripError(f"saved weights do not match what AutoModelForCausalLM builds: {bad}")
    return model


def _slot_hint(config) -> str:
    """transformers' auto class unwraps only a `text_config` slot for a causal-LM class built on a
    sub-config; a class whose config sits in another slot (musicgen's `decoder`) gets the whole
    composite config, which it cannot read. Saying so beats the AttributeError it ends in."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        wanted = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].config_class
    except (KeyError, AttributeError):
        return ""
    slot = next((k for k, v in (getattr(config, "sub_configs", None) or {}).items() if v is wanted), None)
    if slot is None or slot == "text_config":
        return ""
    return (f" (its causal-LM class takes the {wanted.__name__} in the '{slot}' slot, but transformers "
            f"unwraps only a 'text_config' slot and hands it the composite config)")


def _saved_model_type(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def _vocab(config) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text, "vocab_size", None) or getattr(config, "vocab_size"))


def _moe_shape(config) -> tuple[int | None, int]:
    from tools.hf.config import analyze

    moe = analyze(json.loads(config.to_json_string())).moe
    if not moe:
        return None, 0
    return moe["num_experts"], moe.get("top_k") or 1


def _attach_router_hooks(model, num_experts: int | None, top_k: int):
    """Watch every module whose output scores or indexes `num_experts` experts; collect chosen experts."""
    import torch

    routed: set[int] = set()
    hooks = []
    if not num_experts:
        return hooks, routed

    def grab(_mod, _inp, output):
        outs = output if isinstance(output, (tuple, list)) else (output,)
        for o in outs:
            if not isinstance(o, torch.Tensor) or o.numel() == 0:
                continue
            if o.dtype in (torch.int64, torch.int32) and o.dim() >= 1 and o.shape[-1] == top_k:
                # ids past num_experts are "zero" (identity) experts some families add
                routed.update(int(x) for x in o.flatten().tolist() if 0 <= x < num_experts)
                return
        for o in outs:
            if isinstance(o, torch.Tensor) and o.is_floating_point() and o.dim() >= 2 and o.shape[-1] == num_experts:
                routed.update(int(x) for x in o.reshape(-1, num_experts).topk(top_k, dim=-1).indices.flatten())
                return

    def grab_dispatch(_mod, args, kwargs):
        # fused expert modules receive the chosen indices as an integer tensor argument
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, torch.Tensor) and a.dtype in (torch.int64, torch.int32) and a.numel() \
                    and 0 <= int(a.min()) and a.shape[-1] == top_k:
                routed.update(int(x) for x in a.flatten().tolist() if x < num_experts)

    for name, mod in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        cls = type(mod).__name__.lower()
        if last in ("gate", "router", "gating", "w_gate", "router_gate") or "router" in cls or cls.endswith("gate"):
            hooks.append(mod.register_forward_hook(grab))
        elif last == "experts" or cls.endswith("experts"):
            hooks.append(mod.register_forward_pre_hook(grab_dispatch, with_kwargs=True))
    return hooks, routed
