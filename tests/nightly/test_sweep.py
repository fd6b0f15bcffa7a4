"""The sweep's queue, budgets, skip logic and resumability, with scripted jobs (no exports)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import git
import pytest

from agent.nightly import status
from agent.nightly.gap import discover, select
from agent.nightly.settings import NightlySettings
from agent.nightly.store import AttemptStore, Inputs, SweepBusy
from agent.nightly.sweep import Budget, Options, plan_types, run_queue, sweep
from agent.settings import Settings
from tools.repo.workspace import commit_all
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
INPUTS = Inputs(transformers="5.5.4", target_rev="a" * 40, builder="0.1.0+x")
BIG = Budget(wall_s=1e9, tokens=10**9, prs=10**9)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeHandle:
    """A job that finishes on the poll after it starts, with a scripted row; or never, if `hang`."""

    def __init__(self, t: str, outcome: str, clock: Clock, cost_s: float = 10.0, tokens: int = 0,
                 hang: bool = False, budget_s: float = 100.0):
        self.model_type, self.outcome, self.clock = t, outcome, clock
        self.cost, self.tokens, self.hang, self.budget_s = cost_s, tokens, hang, budget_s
        self.started = clock()
        self.recorded = False
        self.abandoned = False
        clock.t += cost_s  # time passes while it runs

    def done(self):
        return not self.hang

    def over_budget(self):
        return self.clock() - self.started > self.budget_s

    def result(self):
        return status.Row(model_type=self.model_type, status=self.outcome, tokens=self.tokens,
                          inputs=INPUTS.model_dump(), finished_at=time.time(), seconds=self.cost)

    def stop(self):
        return status.timeout(self.model_type, self.budget_s, "verify", inputs=INPUTS.model_dump(),
                              finished_at=time.time())

    def abandon(self):
        self.abandoned = True


def queue(types, outcomes, *, jobs=2, budget=BIG, clock=None, **kw):
    clock = clock or Clock()
    launched, recorded, rows = [], [], []

    def launch(t):
        h = FakeHandle(t, outcomes.get(t, "needs_llm"), clock, **kw)
        launched.append(h)
        return h
    stopped = run_queue(types, launch, jobs=jobs, budget=budget, record=recorded.append, rows=rows,
                        clock=clock, poll_s=0)
    return rows, stopped, launched, recorded


def test_every_type_gets_a_row_and_attempts_are_recorded():
    rows, stopped, launched, recorded = queue(["a", "b", "c"], {"a": "pr", "b": "compare_failed"})
    assert stopped is None
    assert sorted((r.model_type, r.status) for r in rows) == [("a", "pr"), ("b", "compare_failed"), ("c", "needs_llm")]
    assert sorted(r.model_type for r in recorded) == ["a", "b", "c"]


def test_wall_budget_stops_new_starts_and_says_so():
    rows, stopped, launched, _ = queue(list("abcdef"), {}, jobs=1, budget=Budget(wall_s=25, tokens=10**9, prs=99))
    assert "wall-time budget of 25 s" in stopped
    assert [h.model_type for h in launched] == ["a", "b", "c"]  # started at t=0, 10, 20
    skipped = [r for r in rows if r.status == "skipped"]
    assert [r.model_type for r in skipped] == ["d", "e", "f"]
    assert all("not started: wall-time budget" in r.detail for r in skipped)


def test_token_budget():
    rows, stopped, launched, _ = queue(list("abcd"), {}, jobs=1, tokens=600,
                                       budget=Budget(wall_s=1e9, tokens=1000, prs=99))
    assert "token budget" in stopped and len(launched) == 2
    assert {r.model_type for r in rows if r.status == "skipped"} == {"c", "d"}


def test_pr_budget_counts_jobs_in_flight():
    rows, stopped, launched, _ = queue(list("abcd"), {"a": "pr", "b": "pr"}, jobs=2,
                                       budget=Budget(wall_s=1e9, tokens=10**9, prs=1))
    # with a cap of one PR, a second job never runs beside the first: both could publish
    assert [h.model_type for h in launched] == ["a"]
    assert "PR budget of 1" in stopped
    assert [r.status for r in rows].count("pr") == 1


def test_per_type_timeout_kills_and_records():
    rows, _, launched, recorded = queue(["slow"], {}, hang=True, budget_s=5.0, cost_s=10.0)
    assert rows[0].status == "timeout" and recorded[0].status == "timeout"


def test_interrupt_abandons_running_jobs_without_recording():
    clock, started, recorded, rows = Clock(), [], [], []

    def launch(t):
        if t == "c":
            raise KeyboardInterrupt
        h = FakeHandle(t, "pr", clock, hang=True)
        started.append(h)
        return h
    with pytest.raises(KeyboardInterrupt):
        run_queue(list("abcd"), launch, jobs=3, budget=BIG, record=recorded.append, rows=rows, clock=clock,
                  poll_s=0)
    assert all(h.abandoned for h in started) and recorded == []
    assert {r.model_type: r.status for r in rows} == {t: "skipped" for t in "abcd"}


# -- skip logic ---------------------------------------------------------------------------------------------

class Forge:
    def __init__(self, open_types=()):
        self.open = set(open_types)

    def find(self, target, t):
        return SimpleNamespace(url=f"file:///r#{t}", json_path=f"/prs/{t}.json") if t in self.open else None

    def records(self):
        return []


def test_an_open_pr_filed_under_a_finer_key_still_skips_its_type(tmp_path):
    """flashinfer-bench files PRs per checkpoint entry (qwen3-8b): the sweep asks about the type (qwen3)."""
    from tools.forge.local import LocalForge

    forge = LocalForge(tmp_path / "data")
    forge.store.write(target="flashinfer-bench", model_type="qwen3-8b", subject="qwen3", body="b", diff="d",
                      title="t", branch="onboard/flashinfer-bench/qwen3-8b", remote="r", base_rev="a", head_rev="b",
                      url="file:///r#qwen3-8b", thread_id="th", verification={})
    plan = plan_types(["qwen3", "olmo2"], supported=set(), inputs=INPUTS, store=AttemptStore(tmp_path, "fib"),
                      forge=forge, target="flashinfer-bench", since_days=7, limit=None, now=time.time())
    assert plan.to_run == ["olmo2"]
    assert [r.detail for r in plan.rows] == ["open PR file:///r#qwen3-8b"]


def test_skip_open_pr_recent_same_inputs_and_limit(tmp_path):
    store = AttemptStore(tmp_path, "optimum-intel")
    now = time.time()
    store.record(status.Row(model_type="recent", status="needs_llm", inputs=INPUTS.model_dump(),
                            finished_at=now - 3600))
    store.record(status.Row(model_type="old", status="needs_llm", inputs=INPUTS.model_dump(),
                            finished_at=now - 10 * 86400))
    other = INPUTS.model_copy(update={"transformers": "5.6.0"})
    store.record(status.Row(model_type="newtf", status="build_failed", inputs=other.model_dump(),
                            finished_at=now - 60))
    types = ["llama", "code_llama", "haspr", "recent", "old", "newtf", "x", "y"]
    plan = plan_types(types, supported={"llama"}, inputs=INPUTS, store=store, forge=Forge({"haspr"}),
                      target="optimum-intel", since_days=7, limit=3, now=now, aliases={"code_llama": "llama"})
    assert plan.to_run == ["old", "newtf", "x"]
    why = {r.model_type: r.detail for r in plan.rows}
    assert why["llama"].startswith("already supported")
    assert "with llama's config class" in why["code_llama"]
    assert why["haspr"] == "open PR file:///r#haspr"
    assert "same inputs: needs_llm" in why["recent"]
    assert why["y"] == "beyond --limit 3"
    assert all(r.status == "skipped" for r in plan.rows)
    # --since 0 retries everything attempted
    assert "recent" in plan_types(["recent"], supported=set(), inputs=INPUTS, store=store, forge=Forge(),
                                  target="optimum-intel", since_days=0, limit=None, now=now).to_run


def test_a_type_locked_by_a_straggler_is_skipped(tmp_path):
    store = AttemptStore(tmp_path, "t")
    with store.type_lock("busy") as mine:
        assert mine and store.is_locked("busy")
        plan = plan_types(["busy"], supported=set(), inputs=INPUTS, store=store, forge=Forge(), target="t",
                          since_days=7, limit=None)
        assert plan.to_run == [] and "another process" in plan.rows[0].detail
    assert not store.is_locked("busy")


def test_one_sweep_per_target(tmp_path):
    store = AttemptStore(tmp_path, "t")
    with store.sweep_lock():
        with pytest.raises(SweepBusy):
            with store.sweep_lock():
                pass


# -- whole sweeps on a local workspace, scripted jobs -------------------------------------------------------

@pytest.fixture
def env(tmp_path, monkeypatch):
    import agent.nightly.sweep as sw

    up = tmp_path / "up"
    shutil.copytree(FIXTURES, up, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    commit_all(git.Repo.init(up, initial_branch="main"), "base")
    gap = {"text-generation": {"llama": "L", "cwm": "C", "seed_oss": "S", "olmoe": "O", "jamba": "J"}}
    monkeypatch.setattr(sw, "discover", lambda target, ws: discover(target, ws, gap))
    monkeypatch.setattr(sw, "select", lambda g, only: select(g, only, gap["text-generation"]))
    monkeypatch.setattr(sw, "builder_version", lambda: "0.1.0+fixed")  # the live tree may change mid-test
    settings = Settings(data_dir=tmp_path / "data")
    return settings, str(up)


def scripted(outcomes, log, die_after=None):
    def factory(inputs, out_dir):
        def launch(t):
            if die_after is not None and len(log) >= die_after:
                raise KeyboardInterrupt  # the sweep is killed here
            log.append(t)
            h = FakeHandle(t, outcomes.get(t, "needs_llm"), Clock(), cost_s=0)
            h.result = lambda: status.Row(model_type=t, status=h.outcome, inputs=inputs.model_dump(),
                                          finished_at=time.time())
            return h
        return launch
    return factory


def test_second_run_skips_and_a_killed_sweep_resumes(env):
    settings, repo = env
    nset = NightlySettings(per_type_timeout_s=60)
    opts = Options(target="optimum-intel", repo=repo, jobs=2)
    log: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        sweep(opts, settings, nset, launcher_factory=scripted({"cwm": "pr"}, log, die_after=2))
    assert log == ["cwm", "jamba"]
    runs = sorted((settings.data_dir / "nightly" / "optimum-intel" / "runs").glob("*/summary.json"))
    killed = json.loads(runs[-1].read_text())
    assert killed["interrupted"] and {r["model_type"] for r in killed["rows"]} == {"cwm", "jamba", "olmoe", "seed_oss"}

    log2: list[str] = []
    result = sweep(opts, settings, nset, launcher_factory=scripted({}, log2))
    assert sorted(log2) == ["olmoe", "seed_oss"]  # only what the killed sweep did not finish
    assert result.summary["counts"]["skipped"] == 2
    assert result.summary["counts"]["needs_llm"] == 2

    log3: list[str] = []
    again = sweep(opts, settings, nset, launcher_factory=scripted({}, log3))
    assert log3 == [] and again.summary["counts"]["skipped"] == 4
    assert all("same inputs" in r["detail"] for r in again.summary["rows"])
    assert len(list(runs[0].parent.parent.iterdir())) == 3  # every run kept
    assert again.paths["html"].exists() and (settings.data_dir / "nightly" / "optimum-intel" / "latest").exists()
