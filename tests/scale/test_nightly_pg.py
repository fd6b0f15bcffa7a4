"""Nightly state that holds across machines: attempts, type and sweep locks, and the night's PR/token budget
live in Postgres. "Machines" here are stores and workers with their own data dirs on one shared database."""

from __future__ import annotations

import time

import pytest

from agent.nightly.status import Row
from agent.nightly.store import KEEP_ATTEMPTS, Inputs, SweepBusy
from agent.service.queue import Job
from agent.service.workers import RunResult
from agent.settings import Settings
from tests.scale.cluster import wait_ready

pytestmark = pytest.mark.scale
INPUTS = Inputs(transformers="4.57.0", target_rev="abc123", builder="b1")
TARGET = "optimum-intel"


def test_attempts_and_locks_of_one_machine_are_seen_by_the_planner_on_another(cluster, tmp_path, monkeypatch):
    from agent.nightly.store import open_store
    from agent.nightly.sweep import plan_types
    from tools.forge.local import LocalForge

    monkeypatch.setenv("ONBOARD_CHECKPOINT_URL", cluster.database())
    a, b = open_store(tmp_path / "a", TARGET), open_store(tmp_path / "b", TARGET)
    b.record(Row(model_type="cwm", status="tests_failed", detail="on b", inputs=INPUTS.model_dump(),
                 finished_at=time.time()))
    assert a.recent("cwm", INPUTS, 7).detail == "on b"
    assert a.recent("cwm", INPUTS.model_copy(update={"builder": "b2"}), 7) is None  # other inputs: run again
    with b.type_lock("helium") as mine:
        assert mine and a.is_locked("helium")
        with a.type_lock("helium") as theirs:
            assert not theirs
        plan = plan_types(["cwm", "helium", "olmo"], supported=set(), inputs=INPUTS, store=a,
                          forge=LocalForge(tmp_path / "a"), target=TARGET, since_days=7, limit=None)
    assert plan.to_run == ["olmo"]
    why = {r.model_type: r.detail for r in plan.rows}
    assert why["cwm"].startswith("attempted ") and "same inputs: tests_failed" in why["cwm"]
    assert why["helium"] == "another process is working on it (a job of an earlier sweep)"
    assert not a.is_locked("helium")  # freed with b's session
    for i in range(KEEP_ATTEMPTS + 3):
        a.record(Row(model_type="olmo", status="timeout", detail=str(i), finished_at=float(i)))
    hist = b.history("olmo")
    assert len(hist) == KEEP_ATTEMPTS and hist[-1].detail == str(KEEP_ATTEMPTS + 2)
    with a.sweep_lock():
        with pytest.raises(SweepBusy, match="another nightly sweep or enqueue of this target"):
            with b.sweep_lock():
                pass
    with b.sweep_lock():  # released with a's session
        pass
    assert not (tmp_path / "a" / "nightly" / TARGET / "attempts").exists()  # no file was written
    a.close()
    b.close()


class _Forge:
    name = "fake"

    def __init__(self):
        self.published: list[str] = []

    def publish(self, **kwargs):
        self.published.append(kwargs["model_type"])
        return {"url": f"https://example.test/{kwargs['model_type']}"}


class _Runner:
    """Stands in for GraphRunner: publishes through its forge_factory (as the publish node does)."""

    def __init__(self, forge: _Forge, before_publish=lambda: None):
        self.forge_factory, self.before_publish, self.ran = (lambda: forge), before_publish, []

    def run(self, job, resume, on_stage, on_thread):
        self.ran.append(job.id)
        on_thread(f"thread-{job.id}")
        on_stage("verify")
        self.before_publish()
        self.forge_factory().publish(model_type=job.request["model"])
        return RunResult(status="done", thread_id=f"thread-{job.id}", outcome="pr", message="published")


def _final_state(settings, thread_id):
    # The graph's final values for a published type (what status.from_state reads).
    return {"outcome": "pr", "thread_id": thread_id, "pr": {"url": "https://example.test/pr"},
            "attempts": [{"candidate": "registry:llama", "passed": True, "score": 0.0}],
            "llm": {"usage": {"total_tokens": 40}}}


def _job(jid: str, model: str, night: str, max_prs: int = 1, token_budget: int = 1000) -> Job:
    now = time.time()
    return Job(id=jid, trigger_key=f"nightly:{night}:{model}", subject=f"{TARGET}|{model}", source="nightly",
               reply={}, status="running", created_at=now, updated_at=now,
               request={"model": model, "target": TARGET, "nightly": {
                   "night": night, "inputs": INPUTS.model_dump(), "max_prs": max_prs, "token_budget": token_budget}})


def _recorder(url, data_dir, runner):
    from agent.scale.nightly_job import NightlyRecorder

    return NightlyRecorder(runner, Settings(data_dir=data_dir), url, state=_final_state)


def test_a_worker_records_its_attempt_and_the_night_pr_budget_holds_across_workers(cluster, tmp_path):
    from agent.scale.attempts import NightSpend, PgAttemptStore

    url = cluster.database()
    noop = lambda *a: None  # noqa: E731
    forge_a, forge_b = _Forge(), _Forge()
    runner_a, runner_b = _Runner(forge_a), _Runner(forge_b)
    worker_a, worker_b = _recorder(url, tmp_path / "a", runner_a), _recorder(url, tmp_path / "b", runner_b)

    first = worker_a.run(_job("j1", "cwm", "n1"), None, noop, noop)
    assert first.outcome == "pr" and forge_a.published == ["cwm"]
    row = PgAttemptStore(url, tmp_path / "planner", TARGET).recent("cwm", INPUTS, 7)  # a third machine
    assert row.status == "pr" and row.tokens == 40 and row.inputs == INPUTS.model_dump()
    assert NightSpend(url, "n1", TARGET).totals() == (1, 40)

    # The night's one PR is taken: another worker does not start a new type, and says why.
    second = worker_b.run(_job("j2", "helium", "n1"), None, noop, noop)
    assert (second.status, second.outcome) == ("done", "budget_reached")
    assert second.message == "not started: PR budget of 1 per night reached"
    assert runner_b.ran == [] and forge_b.published == []
    assert PgAttemptStore(url, tmp_path / "planner", TARGET).history("helium") == []  # tried again next night

    # A redelivered job that already has tonight's PR runs on (its publish is an upsert of the same PR).
    again = worker_b.run(_job("j1", "cwm", "n1"), None, noop, noop)
    assert again.outcome == "pr" and forge_b.published == ["cwm"]

    # Both started before either published: the one that publishes second finds no slot and publishes nothing.
    forge_c, forge_d = _Forge(), _Forge()
    worker_d = _recorder(url, tmp_path / "d", _Runner(forge_d))
    racer = _Runner(forge_c, before_publish=lambda: worker_d.run(_job("j4", "olmo", "n2"), None, noop, noop))
    late = _recorder(url, tmp_path / "c", racer).run(_job("j3", "qwen3", "n2"), None, noop, noop)
    assert forge_d.published == ["olmo"] and forge_c.published == []
    assert (late.status, late.outcome) == ("done", "budget_reached")
    assert late.message == "verified; not published: PR budget of 1 per night reached"
    assert NightSpend(url, "n2", TARGET).totals()[0] == 1

    # The token budget stops new types the same way.
    spent = _recorder(url, tmp_path / "a", _Runner(_Forge())).run(
        _job("j5", "gemma", "n3", max_prs=10, token_budget=30), None, noop, noop)
    assert spent.outcome == "pr"
    over = worker_b.run(_job("j6", "phi", "n3", max_prs=10, token_budget=30), None, noop, noop)
    assert over.outcome == "budget_reached" and over.message == "not started: token budget of 30 reached (40 used)"


def test_a_type_another_machine_works_on_is_not_run_twice(cluster, tmp_path):
    from agent.scale.attempts import PgAttemptStore

    url = cluster.database()
    runner = _Runner(_Forge())
    with PgAttemptStore(url, tmp_path / "sweep-host", TARGET).type_lock("cwm") as mine:
        assert mine
        result = _recorder(url, tmp_path / "w", runner).run(_job("j1", "cwm", "n1"), None, lambda s: None,
                                                              lambda t: None)
    assert (result.status, result.outcome) == ("done", "type_busy") and runner.ran == []


def test_a_celery_worker_ends_a_nightly_job_over_the_night_budget_and_records_the_others(cluster, tmp_path,
                                                                                        stop_workers):
    from agent.scale.attempts import NightSpend, PgAttemptStore
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    db = cluster.database()
    queue = PgJobQueue(db)
    NightSpend(db, "n-full", TARGET).claim_pr("some-type", 1, "j0")  # tonight's one PR went elsewhere
    w = cluster.worker("night", cluster.env(db, tmp_path / "worker-data"), "-c", "1")
    wait_ready(w)
    jobs = {}
    for night, model in (("n-full", "scripted-over"), ("n-room", "scripted-room")):
        jobs[model], _ = queue.enqueue(
            trigger_key=f"nightly:{night}:{model}", subject=f"{TARGET}|{model}", source="nightly", reply={},
            request={"model": model, "target": TARGET, "sleep_s": 0.5, "nightly": {
                "night": night, "inputs": INPUTS.model_dump(), "max_prs": 1, "token_budget": 1000}})
    Publisher(queue, cluster.mq.url).publish_queued()
    deadline = time.monotonic() + 180
    while any(queue.get(j.id).status != "done" for j in jobs.values()):
        assert time.monotonic() < deadline, w.log_path.read_text()[-3000:]
        time.sleep(0.3)
    over, room = queue.get(jobs["scripted-over"].id), queue.get(jobs["scripted-room"].id)
    assert (over.outcome, over.message) == ("budget_reached", "not started: PR budget of 1 per night reached")
    assert room.outcome == "scripted"  # the scripted run went through the recorder to its end
    # ... and its attempt, recorded by the worker, is what a planner with its own data dir sees.
    row = PgAttemptStore(db, tmp_path / "planner", TARGET).recent("scripted-room", INPUTS, 7)
    assert row is not None and row.inputs == INPUTS.model_dump()
    queue.close()


def test_a_real_onboarding_whose_pr_slot_went_elsewhere_is_not_published_and_publishes_the_next_night(
        cluster, tmp_path, stop_workers):
    """cwm → optimum-intel through the real graph: the night's last slot is taken while cwm verifies, so its
    publish claims none and publishes nothing; the next night's job resumes at publish and records the PR."""
    import os
    from pathlib import Path

    from agent.scale.attempts import NightSpend, PgAttemptStore
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher
    from tools.forge.local import LocalForge

    db, data = cluster.database(), tmp_path / "data"
    cache = Path(os.environ.get("ONBOARD_TEST_SCALE_CACHE") or cluster.root / "cache")
    w = cluster.worker("real", cluster.env(db, data, ONBOARD_CACHE_DIR=cache), "-c", "1")
    wait_ready(w)
    queue, pub = PgJobQueue(db), Publisher(PgJobQueue(db), cluster.mq.url)

    def night_job(night: str):
        job, _ = queue.enqueue(trigger_key=f"nightly:{night}:cwm", subject=f"{TARGET}|cwm", source="nightly",
                               reply={}, request={"model": "cwm", "target": TARGET, "publish": "auto", "nightly": {
                                   "night": night, "inputs": INPUTS.model_dump(), "max_prs": 1,
                                   "token_budget": 1000}})
        pub.publish_queued()
        return job

    def wait(job_id, pred, what):
        deadline = time.monotonic() + 900
        while not pred(job := queue.get(job_id)):
            assert time.monotonic() < deadline, f"{what}: {job}\n{w.log_path.read_text()[-3000:]}"
            time.sleep(0.05)
        return job

    first = night_job("n1")
    wait(first.id, lambda j: j.status == "running" and j.stage == "implement", "cwm to verify")
    assert NightSpend(db, "n1", TARGET).claim_pr("another-type", 1, "elsewhere")  # another worker's PR
    first = wait(first.id, lambda j: j.status in ("done", "failed"), "the first night's end")
    assert (first.status, first.outcome) == ("done", "budget_reached"), first
    assert first.message == "verified; not published: PR budget of 1 per night reached"
    assert LocalForge(data).records() == []
    planner = PgAttemptStore(db, tmp_path / "planner", TARGET)
    assert planner.history("cwm") == []  # not an attempt: the next night tries it again

    second = wait(night_job("n2").id, lambda j: j.status in ("done", "failed"), "the second night's end")
    assert (second.status, second.outcome) == ("done", "pr"), second
    assert "stage verify done" not in w.log_path.read_text().split(f"job {second.id}: run 1", 1)[1]  # resumed
    row = planner.recent("cwm", INPUTS, 7)
    assert row.status == "pr" and row.pr_url == second.pr_url and row.thread_id == second.thread_id
    assert NightSpend(db, "n2", TARGET).totals()[0] == 1
    assert [r.model_type for r in LocalForge(data).records()] == ["cwm"]
    planner.close()
    queue.close()
