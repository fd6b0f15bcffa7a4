"""Verification job for optimum-intel, run inside a sandbox.

Usage: python verify.py SPEC.json
SPEC: {"phase": "parity"|"tests", "workspace", "tiny_dir", "out_dir", "model_type",
       "tolerance", "max_new_tokens", "tests": [[file, keyword], ...],
       "task": "text-generation-with-past" (default) | "text-generation" (a model without a KV cache),
       "precision_matrix": bool, "devices": ["CPU", "GPU", "NPU"] | null}
With precision_matrix, a passed f32 gate is followed by the matrix (precision.py): the report's
"precision" holds its rows, which the host judges.
Prints one JSON report as the last line of stdout (and writes it to out_dir).
Only the standard library and the verification stack are imported here: this
file runs in a sandbox image that has no Onboarder installed.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
from pathlib import Path

try:  # as the sandbox runs it: /job (this directory) is the script's own path
    import cache_probe
    import cached
    import expert_trace
    import experts
    import inprocess
    import precision
    import repo_tests
except ImportError:  # imported by the project's tests
    from sandboxes.targets.optimum_intel import (cache_probe, cached, expert_trace, experts, inprocess, precision,
                                                 repo_tests)

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    "]
# f32 all through: the IR asks for an f16 KV cache (optimum-intel writes KV_CACHE_PRECISION=f16 into its
# runtime options), whose rounding only the cached path sees; the precision matrix measures that default
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}


def _first_error(exc: BaseException) -> str:
    lines = [ln for ln in traceback.format_exception_only(type(exc), exc) if ln.strip()]
    return " ".join(lines[-1].split())[:600]


def _check(name, status, detail="", **metrics):
    return {"name": name, "status": status, "detail": detail, "metrics": metrics}


def _count_sdpa(xml: Path) -> int:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    return sum(1 for op in model.get_ordered_ops() if op.get_type_name() == "ScaledDotProductAttention")


def _divergence(pt, ov, mask, tol):
    """Max |Δ| over real (unpadded) positions and the first position above tol."""
    diff = (pt - ov).abs().amax(dim=-1) * mask
    worst = float(diff.max())
    first = None
    over = (diff > tol).nonzero()
    if len(over):
        b, p = (int(x) for x in over[0])
        first = {"prompt": b, "position": p, "abs_diff": float(diff[b, p])}
    return worst, first


def _as_generate_feeds(model, inputs: dict) -> dict:
    """inputs plus the position ids transformers' generate() would pass with them.

    A bare forward counts positions from 0 on every row (or, for RoBERTa-style embeddings, from
    padding_idx + 1), while generate(), and OVModelForCausalLM after it, count them from each row's first
    real token. Rotary models cannot tell the two apart; models with absolute position embeddings can, so
    the reference forward gets what generate() would give it, and both sides see the same positions."""
    import inspect

    if "position_ids" in inputs or getattr(model.config, "is_encoder_decoder", False):
        return inputs
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return inputs
    mask = inputs["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate() builds them
    return {**inputs, "position_ids": positions}


def _compare(pt_model, ov_model, eager, feeds: dict, tol: float) -> dict:
    """OpenVINO's logits against transformers' default path, and against the model as written (eager,
    uncached) when the default path is the one that disagrees (see _EagerReference)."""
    import torch

    with torch.no_grad():
        pt = pt_model(**feeds).logits
    ov = torch.as_tensor(ov_model(**cached.ov_feeds(ov_model, feeds)).logits)
    worst, first = _divergence(pt, ov, feeds["attention_mask"], tol)
    out = {"worst": worst, "first": first, "reference": "default", "default_worst": worst}
    if worst > tol:
        eager_worst, eager_first = _divergence(eager.logits(feeds), ov, feeds["attention_mask"], tol)
        if eager_worst <= tol:
            out.update(worst=eager_worst, first=eager_first, reference="eager_no_cache")
    return out


def _against(reference: str, default_worst: float) -> str:
    if reference == "default":
        return ""
    return f" against the eager, uncached reference (transformers' default path: {default_worst:.3g})"


class _EagerReference:
    """The model as written, with no fast path: eager attention (every mask materialised) and no cache.

    transformers' default path (sdpa, cached generate()) is what OpenVINO is compared with first, but it can
    disagree with the model's own definition, and OpenVINO then follows the definition: sdpa drops an all-ones
    causal mask that doge folds into its dynamic mask (its attention is then not causal); git's cached decode
    adds the cache length to positions generate() already counted; moshi's cache layers evict keys beyond
    the sliding window that its full causal mask still shows. A check failed against the default reference
    is therefore asked again of this one, loaded only then, and passes only if OpenVINO matches it."""

    def __init__(self, tiny):
        self.tiny, self.model, self.used = tiny, None, []  # used: the prompts only this reference matched

    def get(self):
        if self.model is None:
            import torch
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(
                self.tiny, dtype=torch.float32, attn_implementation="eager").eval()
        return self.model

    def generate(self, feeds: dict, gen: dict) -> list:
        import torch

        with torch.no_grad():
            return self.get().generate(**feeds, **gen, use_cache=False).tolist()

    def logits(self, feeds: dict):
        import torch

        with torch.no_grad():
            return self.get()(**feeds, use_cache=False).logits


def _reference_model(pt_model, eager: _EagerReference, attention: dict | None):
    """The model the repository's tests and the precision matrix compare with: transformers' default, or
    the eager one when its default attention was measured non-causal (cache_probe.causality)."""
    return eager.get() if (attention or {}).get("default_noncausal") else pt_model


MAX_EXTRA_BATCHES = 8


def _expert_coverage(pt_model, ov_model, eager, batch: dict, moe: tuple[int, int], tol: float,
                     traced_loops: list[str] = ()) -> dict:
    """Parity only counts for the experts it reached: add random batches (compared too) until every
    expert of every MoE layer was selected, or fail naming the idle ones. An export that traced a loop
    over the experts its dummy input reached (`traced_loops`, expert_trace.py) fails whatever parity shows."""
    import torch

    n_experts, topk = moe
    cov = experts.Coverage(pt_model, n_experts, topk)
    vocab = pt_model.config.get_text_config().vocab_size
    worst, extra = 0.0, 0
    try:
        with torch.no_grad():
            pt_model(**batch)
            while cov.idle() and extra < MAX_EXTRA_BATCHES:
                feeds = _as_generate_feeds(pt_model, experts.random_batch(vocab, seed=extra))
                worst = max(worst, _compare(pt_model, ov_model, eager, feeds, tol)["worst"])
                extra += 1
    finally:
        cov.close()
    summary = cov.summary()
    if not cov.used:
        return _check("expert_coverage", "failed", f"no router found among the modules of a {n_experts}-expert "
                      "model: which experts the inputs reached is unknown", **summary)
    ok = not summary["idle"] and worst <= tol
    added = f" ({extra} extra batch(es), max |Δlogits| {worst:.3g} on them)" if extra else " by the parity prompts"
    detail = (f"every one of {n_experts} experts selected in each of {summary['layers']} MoE layers{added}"
              if not summary["idle"] else
              f"{len(summary['idle'])} MoE layer(s) left experts idle after {extra} extra batches: "
              f"{dict(list(summary['idle'].items())[:3])}")
    if not summary["idle"] and worst > tol:
        detail += f" > tolerance {tol:g}"
    if traced_loops:
        ok, detail = False, (f"the export traced a Python loop over the experts its dummy input reached "
                             f"({', '.join(traced_loops[:3])}): the graph computes only those, so parity on "
                             f"this tiny model does not carry over; {detail}")
    return _check("expert_coverage", "passed" if ok else "failed", detail, extra_batches=extra,
                  extra_max_abs_diff=worst, traced_loops=list(traced_loops), **summary)


def parity(spec: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # optimum-intel's export registry imports kokoro (text to speech, with misaki and spaCy) whenever it is
    # installed, and does without it on ImportError: 0.5-1.0 s of every parity process (measured, 4 pairs)
    # for a library no causal LM uses. The repository's tests run in their own process and still import it.
    sys.modules.setdefault("kokoro", None)
    import optimum.exporters.openvino as ove

    # Every export calls gc.collect() four times, and each walked the ~680,000 objects the imports made
    # (0.35-0.5 s a call): frozen, the collector skips them (gc.freeze, see site/onboard_gc.py).
    gc.collect()
    gc.freeze()

    checks, timings = [], {}
    tol = float(spec["tolerance"])
    tiny, out = Path(spec["tiny_dir"]), Path(spec["out_dir"])
    ws = Path(spec["workspace"]).resolve()
    code_from = Path(ove.__file__).resolve()
    patched = ws in code_from.parents
    checks.append(_check("patched_code_imported", "passed" if patched else "failed",
                         "optimum.exporters.openvino from the patched workspace" if patched else str(code_from)))
    if not patched:
        return {"checks": checks, "timings": timings}

    t = time.monotonic()
    ir_dir = out / "ir"
    task = spec.get("task") or "text-generation-with-past"
    with_past = task.endswith("-with-past")
    try:
        from optimum.exporters.openvino import main_export

        with expert_trace.recorded() as export_warnings:
            main_export(model_name_or_path=str(tiny), output=str(ir_dir), task=task)
        sdpa = _count_sdpa(ir_dir / "openvino_model.xml")
        checks.append(_check("export", "passed", f"{task}, {'stateful' if with_past else 'no KV cache'}: "
                             f"{sdpa} SDPA ops", sdpa_ops=sdpa, stateful=with_past, task=task))
    except Exception as exc:  # the report carries the first actionable line
        checks.append(_check("export", "failed", _first_error(exc)))
        return {"checks": checks, "timings": {"export": time.monotonic() - t}}
    timings["export"] = time.monotonic() - t

    t = time.monotonic()
    from optimum.intel import OVModelForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    pt_model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    ov_model = OVModelForCausalLM.from_pretrained(ir_dir, ov_config=F32, compile=True, use_cache=with_past)
    gen = dict(do_sample=False, max_new_tokens=int(spec.get("max_new_tokens", 8)),
               min_new_tokens=int(spec.get("max_new_tokens", 8)), pad_token_id=tok.pad_token_id)

    eager = _EagerReference(tiny)
    batch = _as_generate_feeds(pt_model, dict(tok(PROMPTS, return_tensors="pt", padding=True)))
    c = _compare(pt_model, ov_model, eager, batch, tol)
    checks.append(_check("logits_parity", "passed" if c["worst"] <= tol else "failed",
                         f"max |Δlogits| {c['worst']:.3g} (tolerance {tol:g}){_against(c['reference'], c['default_worst'])}",
                         max_abs_diff=c["worst"], first_divergence=c["first"], batch=2, left_padding=True,
                         reference=c["reference"], default_max_abs_diff=c["default_worst"]))

    moe = experts.moe_shape(pt_model.config) if experts.has_experts(pt_model) else None
    if moe:
        checks.append(_expert_coverage(pt_model, ov_model, eager, batch, moe, tol,
                                       expert_trace.traced_loops(pt_model, export_warnings)))

    # Greedy decoding, prompt by prompt, then the padded batch.
    mismatches = []
    for i, prompt in enumerate(PROMPTS):
        enc = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            a = pt_model.generate(**enc, **gen)[0, enc["input_ids"].shape[1]:].tolist()
        b = ov_model.generate(**enc, **gen)[0, enc["input_ids"].shape[1]:].tolist()
        if a != b:
            ref = eager.generate(enc, gen)[0][enc["input_ids"].shape[1]:]
            if ref == b:
                eager.used.append({"prompt": i, "torch_default": a})
                continue
            pos = next(k for k, (x, y) in enumerate(zip(a + [None], b + [None])) if x != y)
            mismatches.append({"prompt": i, "position": pos, "torch": a, "openvino": b, "torch_eager_no_cache": ref})
    note = f" ({len(eager.used)} matched only by the eager, uncached reference)" if eager.used else ""
    checks.append(_check("greedy_tokens", "failed" if mismatches else "passed",
                         f"{len(PROMPTS)} prompts x {gen['max_new_tokens']} tokens{note}",
                         mismatches=mismatches, eager_reference=eager.used))
    plain = {k: v for k, v in batch.items() if k != "position_ids"}  # generate() makes its own
    with torch.no_grad():
        a = pt_model.generate(**plain, **gen).tolist()
    b = ov_model.generate(**plain, **gen).tolist()
    same, reference = a == b, "default"
    if not same and eager.generate(plain, gen) == b:
        same, reference = True, "eager_no_cache"
    cfg = pt_model.config.get_text_config() if hasattr(pt_model.config, "get_text_config") else pt_model.config
    probe, attention, first = None, None, tok(PROMPTS[0], return_tensors="pt").input_ids
    if eager.model is not None:  # a check matched only the eager reference: is the default attention causal?
        attention = cache_probe.causality(pt_model, eager, first, tol)
    reference_model = _reference_model(pt_model, eager, attention)  # what the repository's tests will load
    if eager.used or reference != "default":  # what the repository's generation test must compare with
        probe = cache_probe.probe(reference_model, eager, first, getattr(cfg, "sliding_window", None),
                                  tok.pad_token_id)
    checks.append(_check("batch_left_padding", "passed" if same else "failed",
                         "batch of 2, left padded, greedy"
                         + (" (equal to the eager, uncached reference only)" if reference != "default" else ""),
                         equal=same, reference=reference, default_equal=a == b, torch_cache=probe,
                         torch_attention=attention))

    # A sequence longer than any window in the config, so sliding attention really slides.
    window = getattr(cfg, "sliding_window", None) or 0
    length = max(48, 2 * int(window) + 8)
    gen_ids = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(int(cfg.vocab_size), len(tok)) - 1, (1, length), generator=gen_ids)
    long = _as_generate_feeds(pt_model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    c = _compare(pt_model, ov_model, eager, long, tol)
    checks.append(_check("long_sequence_parity", "passed" if c["worst"] <= tol else "failed",
                         f"{length} tokens (sliding window {window or 'none'}): max |Δ| {c['worst']:.3g}"
                         f"{_against(c['reference'], c['default_worst'])}",
                         max_abs_diff=c["worst"], length=length, window=window, first_divergence=c["first"],
                         reference=c["reference"], default_max_abs_diff=c["default_worst"]))
    decode = cached.decode_check(task, pt_model, ov_model, ids, tol, eager)
    if decode is not None:
        checks.append(decode)
    timings["parity"] = time.monotonic() - t
    gate = gate_passed(checks)
    if spec.get("measure_int8") and gate:
        t = time.monotonic()
        checks.append(int8_weights(tiny, out / "ir-int8", task))
        timings["int8_export"] = time.monotonic() - t
    report = {"checks": checks, "timings": timings}
    if spec.get("precision_matrix") and gate:  # as users deploy it; the host judges the numbers
        t = time.monotonic()
        # the reference the gate matched: eager when transformers' default attention was measured non-causal,
        # uncached when its cached path departs from the model
        ref = precision.Reference(reference_model, tok, PROMPTS, [batch, long], gen,
                                  uncached=bool(probe and probe.get("compare_uncached")))
        report["precision"] = precision.run_matrix(ir_dir, out / "precision", ref, spec.get("devices"),
                                                   use_cache=with_past)
        report["precision"]["reference"] = "default" if reference_model is pt_model else "eager"
        timings["precision_matrix"] = time.monotonic() - t
    return report


def gate_passed(checks: list[dict]) -> bool:
    """Whether the int8 export and the precision matrix may follow: every check that ran passed. A skipped
    check is one that does not apply (cached_decode without a cache) and says so; skips alone prove nothing."""
    return all(c["status"] in ("passed", "skipped") for c in checks) and any(c["status"] == "passed" for c in checks)


def int8_weights(tiny: Path, ir_dir: Path, task: str = "text-generation-with-past") -> dict:
    """`optimum-cli export openvino --weight-format int8`, exactly as users and the repository's
    CLI tests run it (in this process: inprocess.py), then 8-bit weight outputs counted the way its
    tests count them (utils_tests.get_num_quantized_nodes), and the tokenizer models it converted the way
    its tokenizer test counts them: the test registrations need those numbers."""
    args = ["export", "openvino", "--model", str(tiny), "--task", task,
            "--weight-format", "int8", str(ir_dir)]
    ok, output = inprocess.optimum_cli(args)
    if not ok:
        tail = " ".join(output.strip().splitlines()[-2:])[-400:]
        return _check("int8_weights", "failed", f"optimum-cli int8 export failed: {tail}")
    import openvino as ov

    model = ov.Core().read_model(ir_dir / "openvino_model.xml")
    n = sum(1 for op in model.get_ops() for i in range(op.get_output_size())
            if op.get_output_element_type(i).get_type_name() in ("i8", "u8"))
    tokenizers = sum("tokenizer" in p.name for p in Path(ir_dir).rglob("*.xml"))
    return _check("int8_weights", "passed", f"optimum-cli int8 export ({task}): {n} 8-bit weight outputs, "
                  f"{tokenizers} tokenizer model(s)", per_model={"model": n}, tokenizer_models=tokenizers)


def tests(spec: dict) -> dict:
    # PYTHONPATH (site/ + workspace) comes from the runner; -p onboard_select keeps this model's tests.
    checks, timings = repo_tests.run(Path(spec["workspace"]), spec.get("tests", []), spec["model_type"], _check,
                                     scratch=Path(spec["out_dir"]) if spec.get("out_dir") else None)
    return {"checks": checks, "timings": timings}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    try:
        report = parity(spec) if spec["phase"] == "parity" else tests(spec)
    except Exception as exc:  # an unexpected crash is still a report, not a traceback to parse
        report = {"checks": [_check(spec["phase"], "failed", _first_error(exc))], "timings": {},
                  "traceback": traceback.format_exc()[-4000:]}
    report["phase"] = spec["phase"]
    (out / f"report-{spec['phase']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
