"""`onboard nightly` exit codes: 0 when the sweep ran, 2 for bad input, 1/3 when the sweep itself could not."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import agent.nightly.sweep as sw
from agent.cli.main import app
from agent.nightly.status import STATUSES
from agent.nightly.store import SweepBusy

runner = CliRunner()


def invoke(tmp_path, *args):
    return runner.invoke(app, ["nightly", "--data-dir", str(tmp_path), *args])


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "jobs"),
    (["--limit", "-1"], "--limit"),
    (["--since", "-2"], "--since"),
    (["--target", "nope"], "unknown target 'nope'"),
])
def test_bad_input_exits_2_without_traceback(tmp_path, args, message):
    res = invoke(tmp_path, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "nightly").exists()


def test_exit_0_whatever_the_types_outcomes(tmp_path, monkeypatch):
    seen = {}

    def fake(opts, settings, nset, progress):
        seen.update(only=opts.only, jobs=opts.jobs, limit=opts.limit, since=opts.since_days)
        counts = {s: 0 for s in STATUSES} | {"build_failed": 3, "timeout": 1}
        return SimpleNamespace(summary={"run_id": "r", "target": "optimum-intel", "rows": [{}] * 4, "wall_s": 1.0,
                                        "counts": counts, "budget": {"stopped": None}},
                               paths={"html": tmp_path / "d.html"})
    monkeypatch.setattr(sw, "sweep", fake)
    res = invoke(tmp_path, "--only", "cwm,seed_oss", "--only", "olmoe", "--jobs", "3", "--limit", "2", "--since", "0")
    assert res.exit_code == 0, res.output
    assert seen == {"only": ["cwm", "seed_oss", "olmoe"], "jobs": 3, "limit": 2, "since": 0.0}
    assert "build_failed" in res.output


@pytest.mark.parametrize("exc, code", [(RuntimeError("disk full"), 1), (SweepBusy("another sweep"), 3)])
def test_sweep_failures_are_one_line(tmp_path, monkeypatch, exc, code):
    def boom(*a, **k):
        raise exc
    monkeypatch.setattr(sw, "sweep", boom)
    res = invoke(tmp_path)
    assert res.exit_code == code and str(exc) in res.output and "Traceback" not in res.output


def test_target_all_sweeps_every_target_and_one_failure_does_not_stop_the_others(tmp_path, monkeypatch):
    from tools.errors import UserError
    from tools.targets import names

    swept = []

    def fake(opts, settings, nset, progress):
        swept.append((opts.target, nset.target, opts.only))
        if opts.target == "veomni":
            raise UserError("cannot reach https://github.com/ByteDance-Seed/VeOmni.git")
        counts = {s: 0 for s in STATUSES} | {"pr": 1}
        return SimpleNamespace(summary={"run_id": f"r-{opts.target}", "target": opts.target, "rows": [{}],
                                        "wall_s": 1.0, "counts": counts, "budget": {"stopped": None}},
                               paths={"html": tmp_path / f"{opts.target}.html"})
    monkeypatch.setattr(sw, "sweep", fake)
    res = invoke(tmp_path, "--target", "all", "--only", "cwm", "--json")
    assert [t for t, _, _ in swept] == names() and all(a == b and only == ["cwm"] for a, b, only in swept)
    assert res.exit_code == 1  # one target's sweep did not run
    import json

    got = json.loads(res.stdout)
    assert sorted(got["targets"]) == sorted(set(names()) - {"veomni"})
    assert got["failed"] == {"veomni": "cannot reach https://github.com/ByteDance-Seed/VeOmni.git"}


def test_target_all_refuses_repo_and_schedule(tmp_path):
    for extra in (["--repo", str(tmp_path)], ["--schedule"]):
        res = invoke(tmp_path, "--target", "all", *extra)
        assert res.exit_code == 2 and "--target all" in res.output
