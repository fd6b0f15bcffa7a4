"""Judging the measured precision matrix: tolerances gate, the supported family's range flags, absent
devices are skipped with their reason (never passed), and the PR body carries the matrix as a table."""

from __future__ import annotations

import re

from prompts import render
from tools.targets.optimum_intel.precision import DEFAULT_TOLERANCES, Tolerance, family_of, judge

HOST = {"cpu_model": "Intel(R) Xeon(R) Processor", "isa": ["avx512_bf16", "amx_bf16"], "openvino": "2026.4.1",
        "devices": {"CPU": {"name": "Intel(R) Xeon(R) Processor", "default_precision": "bf16"}}}


def _row(precision, top1, greedy, diff, device="CPU"):
    return {"device": device, "precision": precision, "weights": precision if precision.startswith("int") else "f32",
            "status": "measured", "inference_precision": "f32" if precision == "f32" else "bf16",
            "top1": top1, "greedy": greedy, "max_abs_diff": diff}


def _skipped(device):
    return [{"device": device, "precision": p, "weights": "f32", "status": "skipped",
             "reason": f"OpenVINO reports no {device} here (available: CPU)"} for p in ("f32", "int4")]


BASELINE = {"host": HOST, "models": {
    "llama": {"rows": [_row("f32", 1.0, 1.0, 3e-7), _row("default", 1.0, 1.0, 0.004), _row("int4", 0.85, 0.69, 0.08)]},
    "qwen2": {"rows": [_row("f32", 1.0, 1.0, 2e-7), _row("default", 0.99, 1.0, 0.006), _row("int4", 0.80, 0.60, 0.10)]},
    "gemma": {"rows": [_row("int4", 0.50, 0.30, 0.40)]},
}}


def _measured(*rows):
    return {"host": HOST, "rows": [*rows, *_skipped("GPU"), *_skipped("NPU")]}


def test_within_family_passes_and_absent_devices_are_skipped_with_the_reason():
    checks = judge(_measured(_row("f32", 1.0, 1.0, 1e-7), _row("int4", 0.9, 0.7, 0.05)), DEFAULT_TOLERANCES,
                   ["llama", "qwen2"], BASELINE)
    by = {c.name: c for c in checks}
    assert by["precision:CPU"].status == "passed" and not by["precision:CPU"].metrics["flags"]
    for dev in ("GPU", "NPU"):
        assert by[f"precision:{dev}"].status == "skipped"
        assert f"no {dev} here" in by[f"precision:{dev}"].detail
    assert by["precision:CPU"].metrics["family"] == ["llama", "qwen2"]


def test_outside_the_family_is_flagged_not_refused():
    # int4 top-1 0.7: above the int4 tolerance, below the worst of llama/qwen2 (0.80); gemma's 0.5 does not count
    [cpu, *_] = judge(_measured(_row("int4", 0.7, 0.65, 0.09)), DEFAULT_TOLERANCES, ["llama", "qwen2"], BASELINE)
    assert cpu.status == "passed"
    assert "FLAGGED" in cpu.detail and "int4" in cpu.detail
    assert cpu.metrics["rows"][0]["verdict"] == "flag"


def test_family_only_counts_rows_of_the_same_inference_precision():
    f32_default = {**_row("default", 0.5, 0.5, 0.5), "inference_precision": "f32"}  # a CPU without bf16
    [cpu, *_] = judge(_measured(f32_default), {}, ["llama", "qwen2"], BASELINE)
    assert cpu.metrics["rows"][0]["family"] is None and cpu.metrics["rows"][0]["verdict"] == "ok"


def test_below_tolerance_fails():
    [cpu, *_] = judge(_measured(_row("int4", 0.2, 0.0, 3.0)), DEFAULT_TOLERANCES, ["llama"], BASELINE)
    assert cpu.status == "failed" and cpu.stage == "precision"
    assert "int4: top-1 0.200 <" in cpu.detail


def test_a_row_that_could_not_be_measured_fails():
    broken = {"device": "CPU", "precision": "int4", "weights": "int4", "status": "error",
              "reason": "int4 compression failed: boom"}
    [cpu, *_] = judge(_measured(_row("f32", 1.0, 1.0, 1e-7), broken), DEFAULT_TOLERANCES, ["llama"], BASELINE)
    assert cpu.status == "failed" and "boom" in cpu.detail


def test_tolerance_settings_override_the_defaults():
    loose = {**DEFAULT_TOLERANCES, "int4": Tolerance(min_top1=0.1, min_greedy=0.0, max_abs_diff=5.0)}
    [cpu, *_] = judge(_measured(_row("int4", 0.2, 0.0, 3.0)), loose, ["llama"], BASELINE)
    assert cpu.status == "passed" and "FLAGGED" in cpu.detail  # still worse than the family: said so


def test_family_falls_back_to_every_measured_model():
    family, why = family_of(["cwm_parent"], BASELINE)
    assert family == ["gemma", "llama", "qwen2"] and "every measured" in why


def test_pr_intro_carries_the_matrix_table_and_family_comparison():
    checks = [c.model_dump() for c in judge(_measured(_row("f32", 1.0, 1.0, 1e-7), _row("default", 1.0, 1.0, 0.01),
                                                       _row("int8", 1.0, 1.0, 0.03), _row("int4", 0.7, 0.65, 0.09)),
                                             DEFAULT_TOLERANCES, ["llama", "qwen2"], BASELINE)]
    body = render("targets/optimum_intel/pr_intro.md.j2", display_name="Cwm", model_type="cwm",
                  target="optimum-intel", candidate={"params": {"base_class": "LlamaOpenVINOConfig"}, "why": "x",
                                                     "patterns": []},
                  situation="S1", kind="dense", features=[], min_version="5.0", min_version_source="x",
                  base_rev="0" * 40, workspace_note="a local checkout", tolerance=1e-4,
                  tiny={"num_params": 1, "layers": 2, "window": None}, checks=checks, facts={})
    assert "### Precision matrix" in body
    assert "Intel(R) Xeon(R) Processor (numerics-relevant ISA: avx512_bf16, amx_bf16)" in body
    assert "OpenVINO 2026.4.1" in body and "CPU (default precision bf16)" in body
    assert "| CPU | int4 | int4 → bf16 | 0.700 | 0.650 | 0.09 |" in body and "⚠️ FLAGGED" in body
    assert "⏭ skipped: OpenVINO reports no GPU here" in body and "⏭ skipped: OpenVINO reports no NPU here" in body
    assert "compared with llama, qwen2" in body
    assert "⚠️ FLAGGED: max \\|Δ\\| 0.01 above the family's worst 0.006" in body
    matrix = [ln for ln in body.splitlines() if ln.startswith("| CPU |") or ln.startswith("| device |")]
    assert {len(re.findall(r"(?<!\\)\|", ln)) for ln in matrix} == {10}  # a "|" in a verdict is escaped
    assert "| llama | 1.000 / 3e-07 | 1.000 / 1.000 / 0.004 | - | 0.850 / 0.690 / 0.08 |" in body


def test_a_reduced_precision_is_gated_on_agreement_and_its_logit_error_is_only_flagged():
    # ctrl's int8 row on this machine: agreement as good as the family's, |Δ| 4x the family's worst
    # (judged against the measured baseline shipped with the target: llama's int8 |Δ| is 0.011)
    [cpu, *_] = judge(_measured(_row("f32", 1.0, 1.0, 1e-7), _row("int8", 0.962, 1.0, 0.0585)),
                      DEFAULT_TOLERANCES, ["llama"])
    assert cpu.status == "passed", cpu.detail
    assert "FLAGGED" in cpu.detail and "max |Δ| 0.0585 above the family's worst" in cpu.detail
    # f32 keeps its exactness bar on the logits
    [cpu, *_] = judge(_measured(_row("f32", 1.0, 1.0, 1e-3)), DEFAULT_TOLERANCES, ["llama"], BASELINE)
    assert cpu.status == "failed" and "max |Δ| 0.001 > 0.0001" in cpu.detail


def test_every_supported_model_of_the_stored_baseline_meets_the_default_bars():
    """The bars are justified by the supported models measured in precision_baseline.json: a bar raised above
    any of them would refuse what the repository already ships."""
    from tools.targets.optimum_intel.precision import load_baseline

    stored = load_baseline()
    assert len([m for m, e in stored["models"].items() if e["rows"]]) >= 30
    for model, entry in stored["models"].items():
        measured = {"host": stored["host"], "rows": [{**r} for r in entry["rows"]]}
        if not measured["rows"]:
            continue
        [cpu] = judge(measured, DEFAULT_TOLERANCES, [model], stored)
        assert cpu.status == "passed", f"{model}: {cpu.detail}"


def test_an_eager_reference_is_said_in_the_check():
    """When transformers' default attention was measured non-causal the matrix compares with the eager model;
    the check says so rather than pass as if against the default path."""
    measured = {**_measured(_row("f32", 1.0, 1.0, 1e-7)), "reference": "eager"}
    [cpu, *_] = judge(measured, DEFAULT_TOLERANCES, ["llama"], BASELINE)
    assert "eager attention" in cpu.detail and cpu.metrics["reference"] == "eager"
    [plain, *_] = judge(_measured(_row("f32", 1.0, 1.0, 1e-7)), DEFAULT_TOLERANCES, ["llama"], BASELINE)
    assert "eager" not in plain.detail and plain.metrics["reference"] == "default"
