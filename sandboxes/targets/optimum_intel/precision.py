"""The precision matrix: the exported model as users deploy it, against PyTorch f32.

Runs inside the sandbox after the f32 gate passed. For every device that runs (devices.py) and every
precision — f32 (the gate's hint), the device's default inference precision (bf16 on a CPU with
AVX-512 BF16/AMX), int8 and int4 weights compressed data-free by NNCF with optimum-cli's defaults — it
measures top-1 agreement with PyTorch over every real position of the prompts, greedy-sequence agreement
and max |Δlogits|. It only measures: tolerances and the family comparison are the host's (they are
settings and a measured table there).
"""

from __future__ import annotations

import time
from pathlib import Path

try:
    import cached
    import devices as devs
except ImportError:  # imported by the project's tests
    from sandboxes.targets.optimum_intel import cached
    from sandboxes.targets.optimum_intel import devices as devs

PRECISIONS = ("f32", "default", "int8", "int4")
F32 = {"INFERENCE_PRECISION_HINT": "f32"}
# `optimum-cli export openvino --weight-format int4` without options (_DEFAULT_4BIT_WQ_CONFIG), plus
# group_size_fallback="adjust" (a CLI option): tiny models' widths are not multiples of 128, and "error"
# would refuse them while "ignore" would silently leave them uncompressed.
INT4 = {"bits": 4, "sym": False, "ratio": 1.0, "group_size": 128, "group_size_fallback": "adjust"}
INT8 = {"bits": 8, "sym": False, "ratio": 1.0, "group_size": -1}  # --weight-format int8
LOW_BIT = {"u4": "int4", "i4": "int4", "nf4": "int4", "f4e2m1": "int4", "u8": "int8", "i8": "int8"}
STATIC_LENGTH = 64  # NPU: prompts padded to this many tokens


def low_bit_weights(model) -> dict:
    """Constants stored in 4 or 8 bits: what compression really did to the graph."""
    counts = {"int4": 0, "int8": 0}
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            kind = LOW_BIT.get(op.get_output_element_type(0).get_type_name())
            if kind:
                counts[kind] += 1
    return counts


def compress(ir_dir: Path, dest: Path, bits: int, use_cache: bool = True) -> dict:
    """The IR with int8 or int4 weights through the workspace's optimum-intel (the code under review);
    use_cache=False for an IR exported without a KV cache (OVModelForCausalLM refuses the mismatch)."""
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    cfg = OVWeightQuantizationConfig(**(INT4 if bits == 4 else INT8))
    model = OVModelForCausalLM.from_pretrained(str(ir_dir), quantization_config=cfg, compile=False,
                                               use_cache=use_cache)
    model.save_pretrained(dest)
    return low_bit_weights(model.model)


class Reference:
    """PyTorch f32, computed once for every row: logits of each feed and each prompt's greedy tokens.

    uncached: the greedy tokens come from the model's uncached generate(), for a model whose cached one the
    cache probe measured departing from the model itself (cache_probe.py: git); the gate compared with that.
    pt_model is the eager model when the default attention was measured non-causal (cache_probe.causality)."""

    def __init__(self, pt_model, tok, prompts, feeds: list[dict], gen: dict, uncached: bool = False):
        import torch

        self.feeds, self.gen, self.prompts, self.tok, self.uncached = feeds, gen, prompts, tok, uncached
        pt_gen = {**gen, "use_cache": False} if uncached else gen
        with torch.no_grad():
            self.logits = [pt_model(**f).logits for f in feeds]
            self.greedy = []
            for p in prompts:
                enc = tok(p, return_tensors="pt")
                self.greedy.append(pt_model.generate(**enc, **pt_gen)[0, enc["input_ids"].shape[1]:].tolist())


def agreement(ref_logits, ov_logits, mask) -> tuple[int, float, int]:
    """(positions whose top-1 agrees, max |Δlogits|, positions) over the real (unpadded) positions.
    Counts, not a float32 mean: 39 of 78 as a float32 mean is 0.49999999, below a 0.5 bar it meets."""
    import torch

    ov_logits = torch.as_tensor(ov_logits, dtype=torch.float32)
    real = mask.bool()
    same = (ref_logits.argmax(-1) == ov_logits.argmax(-1))[real]
    diff = (ref_logits - ov_logits).abs().amax(-1)[real]
    return int(same.sum()), float(diff.max()), int(real.sum())


def measure(ov_model, ref: Reference, *, static: bool = False) -> dict:
    """Top-1 agreement, max |Δlogits| and greedy agreement of one compiled model."""
    hits, total, worst = 0, 0, 0.0
    for feeds, logits in zip(ref.feeds, ref.logits):
        if static:  # NPU: one row at a time, padded on the left to the compiled length
            feeds, logits = _rows_padded(feeds, logits)
        for f, lg in ([(feeds, logits)] if not static else zip(feeds, logits)):
            # the same inputs parity fed it: no position ids for an export that computes its own (Mamba)
            agree, diff, n = agreement(lg, ov_model(**cached.ov_feeds(ov_model, f)).logits, f["attention_mask"])
            hits, total, worst = hits + agree, total + n, max(worst, diff)
    row = {"top1": hits / total, "max_abs_diff": worst, "positions": total}
    if static:  # a stateful static-shape decode needs NPUW's LLM pipeline: the prefill is what is compared
        return {**row, "greedy": None, "sequences_equal": None, "greedy_note": "prefill only on NPU"}
    matched, equal = 0, 0
    for prompt, want in zip(ref.prompts, ref.greedy):
        enc = ref.tok(prompt, return_tensors="pt")
        got = ov_model.generate(**enc, **ref.gen)[0, enc["input_ids"].shape[1]:].tolist()
        prefix = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        matched, equal = matched + prefix, equal + (got == want)
    return {**row, "greedy": matched / sum(len(w) for w in ref.greedy), "sequences_equal": equal,
            "sequences": len(ref.greedy)}


def _rows_padded(feeds: dict, logits):
    import torch

    rows, out_logits = [], []
    for b in range(feeds["input_ids"].shape[0]):
        pad = STATIC_LENGTH - feeds["input_ids"].shape[1]
        row = {}
        for k, v in feeds.items():
            row[k] = torch.nn.functional.pad(v[b:b + 1], (pad, 0), value=0)
        rows.append(row)
        out_logits.append(torch.nn.functional.pad(logits[b:b + 1], (0, 0, pad, 0)))
    return rows, out_logits


def _load(model_dir: Path, device: str, precision: str, use_cache: bool = True):
    from optimum.intel import OVModelForCausalLM

    config = F32 if precision == "f32" else {}
    if device != "NPU":
        return OVModelForCausalLM.from_pretrained(str(model_dir), device=device, ov_config=config, compile=True,
                                                  use_cache=use_cache)
    model = OVModelForCausalLM.from_pretrained(str(model_dir), device=device, ov_config=config, compile=False,
                                               use_cache=use_cache)
    devs.npu_static(model.model, 1, STATIC_LENGTH)  # NPU compiles static shapes only
    model.compile()
    return model


def _used_precision(ov_model) -> str:
    try:
        return devs.type_name(ov_model.request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT"))
    except Exception:
        return "unknown"


def run_matrix(ir_dir: Path, out: Path, ref: Reference, requested: list[str] | None,
               precisions=PRECISIONS, use_cache: bool = True) -> dict:
    """{"host": where it ran, "rows": one per device x precision, "timings"}. A row that could not be
    measured says why (status "error" or "skipped"); nothing here decides pass or fail."""
    import openvino as ov

    core = ov.Core()
    plan = devs.plan(requested, devs.available(core))
    host = devs.describe(core, plan)
    rows, timings = [], {}
    models = {"f32": ir_dir, "default": ir_dir}
    compressed = {}
    for precision, bits in (("int8", 8), ("int4", 4)):
        if precision not in precisions:
            continue
        t = time.monotonic()
        try:
            compressed[precision] = compress(ir_dir, out / f"ir-{precision}", bits, use_cache)
            models[precision] = out / f"ir-{precision}"
        except Exception as exc:  # compression itself broke: every device's row says so
            compressed[precision] = {"error": " ".join(str(exc).split())[:400]}
        timings[f"compress_{precision}"] = time.monotonic() - t
    for d in plan:
        for precision in precisions:
            row = {"device": d["device"], "precision": precision,
                   "weights": precision if precision in ("int8", "int4") else "f32"}
            if precision in compressed:
                row["low_bit_weights"] = compressed[precision]
            if not d["run"]:
                rows.append({**row, "status": "skipped", "reason": d["reason"]})
                continue
            if precision not in models:
                rows.append({**row, "status": "error", "reason": f"{precision} compression failed: "
                             f"{compressed[precision]['error']}"})
                continue
            t = time.monotonic()
            try:
                model = _load(models[precision], d["device"], precision, use_cache)
                row["inference_precision"] = _used_precision(model)
                row.update(measure(model, ref, static=d["device"] == "NPU"), status="measured")
            except Exception as exc:
                row.update(status="error", reason=" ".join(str(exc).split())[:400])
            timings[f"{d['device']}:{precision}"] = time.monotonic() - t
            rows.append(row)
    return {"host": host, "rows": rows, "timings": timings,
            "greedy_reference": "uncached" if ref.uncached else "default"}
