"""`onboard bench sweep`: seconds per stage, read back from a sweep's job and attempt reports."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent.cli.main import app
from agent.nightly.split import STAGES, sweep_split


def _sweep(tmp_path):
    """A finished sweep on disk: one type with two attempts (the first refused by its tests), one skipped."""
    attempts = []
    for i, timings in enumerate([{"export": 10.0, "parity": 1.0, "int8_export": 5.0, "tests": 40.0},
                                 {"export": 12.0, "parity": 2.0, "tests:tests/openvino/test_decoder.py": 30.0,
                                  "sandbox:parity": 99.0}]):
        path = tmp_path / f"verification-{i}.json"
        path.write_text(json.dumps({"timings": timings}))
        attempts.append({"report": str(path)})
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"attempts": attempts, "timings": {
        "analyze": 1.0, "plan": 2.0, "references": 3.0, "tiny": 4.0, "implement[0]": 0.5, "implement[1]": 0.5,
        "verify[0]": 70.0, "verify[1]": 50.0, "publish": 6.0}}))
    run = tmp_path / "data" / "nightly" / "optimum-intel" / "runs" / "20260101T000000Z"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "target": "optimum-intel", "run_id": "r1", "jobs": 2, "wall_s": 150.0,
        "rows": [{"model_type": "cwm", "status": "pr", "seconds": 140.0, "report_path": str(report)},
                 {"model_type": "gpt2", "status": "skipped", "seconds": 0.0}]}))
    return run / "summary.json"


def test_stages_of_a_type_add_up_to_its_verify_time(tmp_path):
    split = sweep_split(json.loads(_sweep(tmp_path).read_text()))
    cwm = split["types"]["cwm"]
    assert set(split["types"]) == {"cwm"}  # skipped types took no time
    assert (cwm["plan"], cwm["tiny"], cwm["apply"], cwm["publish"]) == (6.0, 4.0, 1.0, 6.0)
    assert (cwm["export"], cwm["compare checks"], cwm["int8"], cwm["repo tests"]) == (22.0, 3.0, 5.0, 70.0)
    inside = sum(cwm[s] for s in ("export", "compare checks", "int8", "repo tests", "verify, other"))
    assert inside == 120.0  # verify[0] + verify[1]
    assert split["sum"]["total"] == 140.0 and split["wall_s"] == 150.0 and set(STAGES) < set(cwm)


def test_bench_sweep_prints_the_split_of_an_earlier_run(tmp_path):
    _sweep(tmp_path)
    res = CliRunner().invoke(app, ["bench", "sweep", "--from", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    assert "repo tests" in res.output and "70.0" in res.output and "wall 150.0 s for 1 types" in res.output


def test_bench_sweep_needs_types_or_a_run(tmp_path):
    res = CliRunner().invoke(app, ["bench", "sweep", "--data-dir", str(tmp_path)])
    assert res.exit_code != 0 and "--only" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["bench", "sweep", "--from", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no sweep summary" in res.output


def test_a_whole_gap_split_names_every_type_in_a_terminal(tmp_path):
    """60+ types as columns left every header an ellipsis; a row per type keeps each name readable."""
    summary = json.loads(_sweep(tmp_path).read_text())
    summary["rows"] = [{**summary["rows"][0], "model_type": f"type_{i:02d}_name"} for i in range(30)]
    path = tmp_path / "data" / "nightly" / "optimum-intel" / "runs" / "20260101T000000Z" / "summary.json"
    path.write_text(json.dumps(summary))
    res = CliRunner().invoke(app, ["bench", "sweep", "--from", str(tmp_path / "data")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert all(f"type_{i:02d}_name" in res.output for i in range(30))
