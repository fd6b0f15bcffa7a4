"""verify() asks the job for the matrix only when the setting is on, and turns its numbers into checks."""

from __future__ import annotations

from tools.targets.base import Candidate, JobContext
from tools.targets.optimum_intel.target import OptimumIntelTarget

PARITY = {"checks": [{"name": "export", "status": "passed", "detail": "", "metrics": {"sdpa_ops": 2}},
                     {"name": "logits_parity", "status": "passed", "detail": "", "metrics": {"max_abs_diff": 1e-7}}],
          "timings": {}}
ROWS = [{"device": "CPU", "precision": "int4", "weights": "int4", "status": "measured", "top1": 0.1, "greedy": 0.0,
         "max_abs_diff": 4.0},
        {"device": "GPU", "precision": "int4", "weights": "int4", "status": "skipped", "reason": "OpenVINO reports no GPU"}]


def _verify(monkeypatch, tmp_path, **ctx):
    import tools.targets.sandbox_job as sandbox_job

    specs = []

    def fake_run_job(sandbox, job, workspace, c, spec, timeout_s, workspace_only=()):
        specs.append(spec)
        return {**PARITY, "precision": {"host": {}, "rows": [dict(r) for r in ROWS]}} if spec.get("precision_matrix") \
            else PARITY

    monkeypatch.setattr(sandbox_job, "run_job", fake_run_job)
    target = OptimumIntelTarget(tmp_path)
    job = JobContext(model_type="cwm", work_dir=tmp_path / "w", **ctx)
    report = target.verify(Candidate(id="c", base="llama"), {"lineage": ["llama"]}, tmp_path, job, None,
                           run_tests=False)
    return report, specs[0]


def test_matrix_on_sends_devices_and_a_break_fails_verification(monkeypatch, tmp_path):
    report, spec = _verify(monkeypatch, tmp_path, precision_matrix=True, devices=["CPU", "GPU"])
    assert spec["precision_matrix"] is True and spec["devices"] == ["CPU", "GPU"]
    assert not report.passed and report.failed_stage == "precision"
    assert report.check("precision:CPU").status == "failed" and report.check("precision:GPU").status == "skipped"


def test_a_tolerance_setting_overrides_one_bar(monkeypatch, tmp_path):
    loose = {"int4": {"min_top1": 0.0, "min_greedy": 0.0, "max_abs_diff": 10.0}}
    report, _ = _verify(monkeypatch, tmp_path, precision_matrix=True, precision_tolerances=loose)
    assert report.check("precision:CPU").status == "passed"


def test_matrix_off_asks_for_nothing(monkeypatch, tmp_path):
    report, spec = _verify(monkeypatch, tmp_path, precision_matrix=False)
    assert spec["precision_matrix"] is False
    assert not [c for c in report.checks if c.name.startswith("precision:")]
