"""`onboard bench precision`: bad input is refused before any model is measured."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import tools.targets.optimum_intel.precision as precision
from agent.cli.main import app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "optimum_intel"


def test_a_type_transformers_does_not_know_is_refused_before_measuring(tmp_path, monkeypatch):
    """It used to surface after every earlier type had been measured (minutes), losing their rows."""
    measured = []
    monkeypatch.setattr(precision, "measure_supported", lambda model_type, *a, **k: measured.append(model_type))
    # both are registered in the fixture checkout; transformers 5.5 has no `exaone` (remote code only)
    res = CliRunner().invoke(app, ["bench", "precision", "llama", "exaone", "--repo", str(FIXTURE),
                                   "--data-dir", str(tmp_path / "data")])
    assert res.exit_code != 0 and "exaone" in res.output
    assert "Traceback" not in res.output and measured == []


def _entry(model_type):
    return {"model_type": model_type, "num_params": 1, "f32_gate": "passed", "seconds": 1.0,
            "host": HOST, "rows": [{"device": "CPU", "precision": "int4", "status": "measured", "top1": 0.7,
                                    "greedy": 0.5, "max_abs_diff": 0.1}]}


HOST = {"cpu_model": "Xeon", "openvino": "2026.4.1", "devices": {"CPU": {"default_precision": "bf16"}}}


def test_add_keeps_the_models_already_stored_and_refuses_another_host(tmp_path, monkeypatch):
    import json

    baseline = tmp_path / "precision_baseline.json"
    baseline.write_text(json.dumps({"host": HOST, "models": {"llama": _entry("llama")}}))
    monkeypatch.setattr(precision, "BASELINE", baseline)
    monkeypatch.setattr(precision, "measure_supported", lambda model_type, *a, **k: _entry(model_type))
    argv = ["bench", "precision", "llama", "--repo", str(FIXTURE), "--data-dir", str(tmp_path / "d"), "--add"]
    baseline.write_text(json.dumps({"host": HOST, "models": {"mixtral": _entry("mixtral")}}))
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert set(json.loads(baseline.read_text())["models"]) == {"mixtral", "llama"}
    before = baseline.read_text()
    other = {**HOST, "openvino": "2025.1"}
    baseline.write_text(before.replace('"2026.4.1"', '"2025.1"'))
    res = CliRunner().invoke(app, argv)
    assert res.exit_code != 0 and "measure every model again with --write" in res.output
    assert json.loads(baseline.read_text())["host"] == other  # a refused merge leaves the file as it was
