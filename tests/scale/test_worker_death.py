"""A whole worker SIGKILLed during a real onboarding (cwm → optimum-intel, sdist workspace, local sandbox):
the job finishes on the other worker from its checkpoint, and there is exactly one PR record.

In the first two tests both workers share this machine's disk (data dir and caches); in the last they share
nothing but what scale mode shares across machines: the broker, the Postgres ledger, checkpoints and locks.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.scale.cluster import wait_ready

pytestmark = pytest.mark.scale
BEFORE_VERIFY = ("intake", "analyze", "plan", "references", "tiny", "implement")


def _cache(cluster) -> Path:
    # A warm cache (sdist, tiny model) may be given to save time; a clean clone builds its own.
    return Path(os.environ.get("ONBOARD_TEST_SCALE_CACHE") or cluster.root / "cache")


def _stages(log: Path, job_id: str) -> list[str]:
    return re.findall(rf"job {job_id}: stage (\w+) done", log.read_text())


def _wait(queue, job_id: str, pred, timeout: float, logs: list[Path], what: str):
    deadline = time.monotonic() + timeout
    while True:
        job = queue.get(job_id)
        if pred(job):
            return job
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in logs)
            raise AssertionError(f"timed out waiting for {what}; job {job}\n{tails}")
        time.sleep(0.05)


def _two_workers(cluster, db, data, **extra):
    env = cluster.env(db, data, ONBOARD_CACHE_DIR=_cache(cluster), **extra)
    workers = {name: cluster.worker(name, env, "-c", "1") for name in ("w1", "w2")}
    for w in workers.values():
        wait_ready(w)
    return workers


def _start_cwm(db, broker):
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    queue = PgJobQueue(db)
    job, created = queue.enqueue(trigger_key="chat:cwm", subject="optimum-intel|cwm", source="chat", reply={},
                                 request={"model": "cwm", "target": "optimum-intel", "publish": "auto"})
    assert created
    Publisher(queue, broker).publish_queued()
    return queue, job


def _history(db: str, thread_id: str) -> list[dict]:
    from agent.scale.checkpoint import postgres_saver

    with postgres_saver(db) as saver:
        return [t.metadata for t in saver.list({"configurable": {"thread_id": thread_id}})]


def _pr_records(data: Path):
    from tools.forge.local import LocalForge

    return [r for r in LocalForge(data).records() if r.target == "optimum-intel"]


def _finish_elsewhere(cluster, tmp_path, kill_when, hold_after_publish: bool):
    db = cluster.database()
    data = tmp_path / "data"
    marker = tmp_path / "published"
    extra = {"ONBOARD_TEST_HOLD_AFTER_PUBLISH": marker} if hold_after_publish else {}
    workers = _two_workers(cluster, db, data, **extra)
    logs = [w.log_path for w in workers.values()]
    queue, job = _start_cwm(db, cluster.mq.url)
    job = _wait(queue, job.id, lambda j: kill_when(j, marker), 900, logs, "the moment to kill")
    victim = job.worker.split("@")[0]
    survivor = next(n for n in workers if n != victim)
    t_kill = time.monotonic()
    cluster.kill(workers[victim])
    resumed = _wait(queue, job.id, lambda j: j.runs >= 2, 120, logs, "the redelivery")
    redelivered_s = time.monotonic() - t_kill
    done = _wait(queue, job.id, lambda j: j.status in ("done", "failed"), 900, logs, "the job to finish")
    print(f"\nkill→restart on {resumed.worker}: {redelivered_s:.2f} s; kill→done {time.monotonic() - t_kill:.1f} s")
    assert done.status == "done" and done.outcome == "pr", done
    assert done.worker.startswith(survivor) and done.runs == 2
    by = {n: _stages(w.log_path, job.id) for n, w in workers.items()}
    assert sum(Counter(by[victim] + by[survivor]).values()) == len(by[victim]) + len(by[survivor])
    assert not set(BEFORE_VERIFY) & set(by[survivor]), by  # resumed, not restarted
    assert set(BEFORE_VERIFY) <= set(by[victim]), by
    records = _pr_records(data)
    assert len(records) == 1 and records[0].model_type == "cwm" and records[0].thread_id == done.thread_id
    history = _history(db, done.thread_id)
    assert [m["source"] for m in history].count("input") == 1  # one start: every later step is a continuation
    steps = [m["step"] for m in history]
    assert len(steps) == len(set(steps)), steps
    return by, records[0], victim, survivor


def test_a_worker_killed_mid_verify_finishes_on_the_other_from_its_checkpoint(cluster, tmp_path, stop_workers):
    by, record, victim, survivor = _finish_elsewhere(
        cluster, tmp_path, lambda j, _: j.status == "running" and j.stage == "implement", hold_after_publish=False)
    assert "verify" not in by[victim] and by[survivor] == ["verify", "publish", "report"], by
    assert record.revision == 1  # published once


def test_a_worker_killed_after_the_pr_is_written_before_its_checkpoint_makes_no_second_pr(cluster, tmp_path,
                                                                                         stop_workers):
    by, record, victim, survivor = _finish_elsewhere(
        cluster, tmp_path, lambda j, marker: marker.exists(), hold_after_publish=True)
    assert "verify" in by[victim] and "publish" not in by[victim], by
    assert by[survivor] == ["publish", "report"], by  # verify did not run again
    assert record.revision == 2  # publish ran twice, as one upserted record


def test_a_worker_with_another_data_dir_and_cache_resumes_by_recreating_the_files(cluster, tmp_path, stop_workers):
    """As on two machines: w2 has none of w1's files (data dir, mirrors, tiny models) and finishes from the
    checkpoint, re-creating the worktree from the mirror + the candidate's diff and rebuilding the tiny model."""
    db = cluster.database()
    data1, data2 = tmp_path / "data1", tmp_path / "data2"
    w1 = cluster.worker("w1", cluster.env(db, data1), "-c", "1")  # caches under the data dir, as w2's
    wait_ready(w1)
    queue, job = _start_cwm(db, cluster.mq.url)
    job = _wait(queue, job.id, lambda j: j.status == "running" and j.stage == "implement", 900, [w1.log_path],
                "verify")
    cluster.kill(w1)  # mid-verify; w2 starts only now, so it is the one that resumes
    gone = data1.rename(tmp_path / "on-the-lost-machine")  # nothing of w1's disk is reachable from w2
    w2 = cluster.worker("w2", cluster.env(db, data2), "-c", "1")  # its caches under its own data dir
    logs = [w1.log_path, w2.log_path]
    done = _wait(queue, job.id, lambda j: j.status in ("done", "failed"), 900, logs, "the job to finish")
    assert done.status == "done" and done.outcome == "pr" and done.worker.startswith("w2") and done.runs == 2, done
    assert _stages(w2.log_path, job.id) == ["verify", "publish", "report"], logs  # nothing before verify again
    assert set(BEFORE_VERIFY) <= set(_stages(w1.log_path, job.id))
    made = re.search(rf"job {job.id}: re-created here: (.*)", w2.log_path.read_text())
    assert made and made.group(1) == "job dir, config, mirror, worktree, tiny model", made
    assert not _pr_records(gone) and len(_pr_records(data2)) == 1
    (record,) = _pr_records(data2)
    assert record.thread_id == done.thread_id and record.revision == 1
    report = json.loads((data2 / "jobs" / done.thread_id / "report.json").read_text())
    assert report["tiny"]["path"].startswith(str(data2)) and report["verification"]["passed"]
    assert [m["source"] for m in _history(db, done.thread_id)].count("input") == 1
