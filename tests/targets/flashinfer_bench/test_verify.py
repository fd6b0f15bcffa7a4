"""The in-sandbox job: a CPU reference run catches broken Definitions, skips oversized ones with the
reason, and the entry point prints one JSON report."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.targets.flashinfer_bench import defs
from sandboxes.targets.flashinfer_bench import verify as job


def test_broken_reference_fails():
    d = defs.derive("gemm_n48_k32", {}, "x", {"tp": 1, "ep": 1})[0]
    d["reference"] = d["reference"].replace("return A @ B.T", "return A @ B")
    (check,) = [c for c in job.check_definition(d) if c["name"].startswith("reference:")]
    assert check["status"] == "failed" and "RuntimeError" in check["detail"]


def test_wrong_output_arity_fails():
    d = defs.derive("rmsnorm_h16", {}, "x", {"tp": 1, "ep": 1})[0]
    d["outputs"]["extra"] = dict(d["outputs"]["output"])
    (check,) = [c for c in job.check_definition(d) if c["name"].startswith("reference:")]
    assert check["status"] == "failed" and "declares 2" in check["detail"]


def test_oversized_reference_is_skipped_with_reason():
    d = defs.derive("gemm_n65536_k65536", {}, "x", {"tp": 1, "ep": 1})[0]
    (check,) = [c for c in job.check_definition(d) if c["name"].startswith("reference:")]
    assert check["status"] == "skipped" and "too large" in check["detail"]


def test_job_entry_point_prints_one_json_report(tmp_path):
    d = defs.derive("rmsnorm_h32", {}, "x", {"tp": 1, "ep": 1})[0]
    (tmp_path / "d.json").write_text(json.dumps(d))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"workspace": str(tmp_path), "definitions": ["d.json"]}))
    out = subprocess.run([sys.executable, job.__file__, str(spec)], capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {c["name"]: c["status"] for c in report["checks"]}["reference:rmsnorm_h32"] == "passed"
