"""The engine on real servers: the Postgres ledger's semantics, chat-ops ahead of nightly, and 200 signed
deliveries (half duplicates) to two service processes that share one ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import TESTS
from tests.fakes.service_env import commented, github_request
from tests.scale.cluster import wait_ready

pytestmark = pytest.mark.scale
SECRET = "whsec_scale_test_5d1e"


def test_the_postgres_ledger_keeps_the_queue_semantics(cluster):
    from agent.scale.ledger import PgJobQueue

    url = cluster.database()
    a, b = PgJobQueue(url), PgJobQueue(url)  # two processes' views of one ledger
    req = {"model": "m", "target": "optimum-intel"}
    j1, created = a.enqueue(trigger_key="chat:1", subject="t|m", source="chat", request=req, reply={})
    assert created and j1.status == "queued"
    assert b.enqueue(trigger_key="chat:1", subject="t|m", source="chat", request=req, reply={}) == (j1, False)
    joined, created = b.enqueue(trigger_key="chat:2", subject="t|m", source="chat", request=req, reply={})
    assert (joined.id, created) == (j1.id, False)  # one active job per subject
    assert a.record_delivery("d1") and not b.record_delivery("d1")
    b.forget_delivery("d1")  # a failed handling on one service lets GitHub's redelivery in on the other
    assert a.record_delivery("d1")
    assert b.start(j1.id, "w1@x").runs == 1 and a.get(j1.id).worker == "w1@x"
    a.update(j1.id, status="done")
    assert b.start(j1.id, "w2@x") is None  # a final row makes a late copy a no-op
    t0 = time.time()
    later, _ = a.enqueue(trigger_key="chat:3", subject="t|m", source="chat", request=req, reply={})
    assert abs(later.created_at - t0) < 5  # double precision: REAL would be minutes off
    assert [j.id for j in a.list()] == [later.id, j1.id]


def _scripted(queue, key, source, sleep_s):
    job, _ = queue.enqueue(trigger_key=key, subject=f"optimum-intel|scripted-{key}", source=source, reply={},
                           request={"model": f"scripted-{key}", "target": "optimum-intel", "sleep_s": sleep_s})
    return job


def test_a_chat_job_queued_behind_nightly_jobs_starts_first(cluster, tmp_path, stop_workers):
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    db = cluster.database()
    queue = PgJobQueue(db)
    pub = Publisher(queue, cluster.mq.url)
    w = cluster.worker("prio", cluster.env(db, tmp_path / "data"), "-c", "1")
    wait_ready(w)
    blocker = _scripted(queue, "blocker", "chat", 6)
    pub.publish_queued()
    deadline = time.monotonic() + 60
    while queue.get(blocker.id).status != "running":
        assert time.monotonic() < deadline, w.log_path.read_text()[-2000:]
        time.sleep(0.1)
    nightly = [_scripted(queue, f"n{i}", "nightly", 0.5) for i in range(3)]
    pub.publish_queued()  # the nightly messages reach the broker first
    chat = _scripted(queue, "chat", "chat", 0.5)
    pub.publish_queued()
    ids = [blocker.id, chat.id, *(j.id for j in nightly)]
    deadline = time.monotonic() + 180
    while any(queue.get(i).status != "done" for i in ids):
        assert time.monotonic() < deadline, w.log_path.read_text()[-3000:]
        time.sleep(0.3)
    # One worker process runs one job at a time: the order they finished in is the order they started in.
    order = sorted(ids, key=lambda i: queue.get(i).updated_at)
    assert order[:2] == [blocker.id, chat.id], [queue.get(i).trigger_key for i in order]


def test_a_duplicate_message_waits_for_the_running_copy_then_does_nothing(cluster, tmp_path, stop_workers):
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    db = cluster.database()
    queue = PgJobQueue(db)
    env = cluster.env(db, tmp_path / "data")
    workers = [cluster.worker(f"dup{i}", env, "-c", "1") for i in range(2)]
    for w in workers:
        wait_ready(w)
    job = _scripted(queue, "dup", "chat", 8)
    pub = Publisher(queue, cluster.mq.url)
    pub.send(job)
    pub.send(job)  # at-least-once delivery: the same job twice, both workers idle
    deadline = time.monotonic() + 120
    logs = lambda: "".join(w.log_path.read_text() for w in workers)  # noqa: E731
    while "nothing to do (duplicate delivery)" not in logs():
        assert time.monotonic() < deadline, logs()[-3000:]
        time.sleep(0.3)
    final = queue.get(job.id)
    assert final.status == "done" and final.runs == 1
    assert "runs elsewhere; this copy retries later" in logs()  # busy: retried, not dropped


def test_a_job_that_kills_its_worker_every_time_stops_at_the_runs_cap(cluster, tmp_path, stop_workers):
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    db = cluster.database()
    queue = PgJobQueue(db)
    w = cluster.worker("poison", cluster.env(db, tmp_path / "data"), "-c", "1")
    wait_ready(w)
    job, _ = queue.enqueue(trigger_key="chat:poison", subject="optimum-intel|scripted-poison", source="chat",
                           reply={}, request={"model": "scripted-poison", "target": "optimum-intel", "die": True})
    Publisher(queue, cluster.mq.url).publish_queued()
    deadline = time.monotonic() + 240
    while queue.get(job.id).status != "failed":
        assert time.monotonic() < deadline, (queue.get(job.id), w.log_path.read_text()[-3000:])
        time.sleep(0.5)
    final = queue.get(job.id)
    assert final.runs == 6 and "gave up after 5 runs" in final.message
    assert w.poll() is None  # the worker itself lives on


def test_the_thread_lock_is_a_postgres_advisory_lock(cluster, tmp_path, monkeypatch):
    from agent.graph.run import ThreadBusy, thread_lock
    from agent.settings import Settings

    monkeypatch.setenv("ONBOARD_CHECKPOINT_URL", cluster.database())
    s = Settings(data_dir=tmp_path)
    with thread_lock(s, "t-1"):
        with pytest.raises(ThreadBusy, match="another worker"):
            with thread_lock(s, "t-1"):
                pass
        with thread_lock(s, "t-2"):  # another thread is free
            pass
    with thread_lock(s, "t-1"):  # released with its session
        pass
    assert not (tmp_path / "locks").exists()  # no file lock was taken


def _serve(cluster, env, port, log):
    return subprocess.Popen([sys.executable, "-c", "from agent.cli.main import main; main()", "serve", "--port",
                             str(port)], env=env, cwd=TESTS.parent, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_200_signed_deliveries_half_duplicates_to_two_services_make_100_jobs(cluster, tmp_path):
    from agent.scale.ledger import PgJobQueue
    from agent.scale.servers import free_port

    db = cluster.database()
    PgJobQueue(db).close()  # schema in place before two processes race to create it
    env = cluster.env(db, tmp_path / "data", ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET=SECRET)
    ports = [free_port(), free_port()]
    log = open(tmp_path / "serve.log", "w")
    services = [_serve(cluster, env, p, log) for p in ports]
    cluster.procs.extend(services)
    try:
        for port in ports:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.3)
        payloads = [commented("acme/models", 7, f"/onboard model{i}", "alice", comment_id=9000 + i) for i in range(100)]
        # Each comment twice, with different delivery ids, to different services, all at once.
        sends = [(ports[(i + k) % 2], p, f"d-{i}-{k}") for k in range(2) for i, p in enumerate(payloads)]

        def send(item):
            port, payload, delivery = item
            r = httpx.post(f"http://127.0.0.1:{port}/webhooks/github", timeout=60,
                           **github_request(SECRET, "issue_comment", payload, delivery=delivery))
            return r.status_code, r.json()

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, sends))
        assert len(answers) == 200
        assert sum(code == 202 for code, _ in answers) == 100, answers
        assert sum(code == 200 and body == {"duplicate": True} for code, body in answers) == 100
        rows = PgJobQueue(db).list(limit=1000)
        assert len(rows) == 100 and len({r.trigger_key for r in rows}) == 100
    finally:
        cluster.stop_all()


def test_nightly_enqueue_plans_the_gap_and_queues_one_job_per_type_once(cluster, tmp_path):
    import json as _json

    from agent.scale.ledger import PgJobQueue

    db = cluster.database()
    cache = os.environ.get("ONBOARD_TEST_SCALE_CACHE") or str(cluster.root / "cache")
    env = cluster.env(db, tmp_path / "data", ONBOARD_CACHE_DIR=cache)
    cmd = [sys.executable, "-c", "from agent.cli.main import main; main()", "nightly", "--enqueue", "--only",
           "cwm,helium,llama", "--device", "gpu", "--json"]
    first = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    out = _json.loads(first.stdout)
    assert sorted(j["model_type"] for j in out["jobs"]) == ["cwm", "helium"]  # llama is supported already
    assert all(j["created"] for j in out["jobs"])
    again = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and not any(j["created"] for j in _json.loads(again.stdout)["jobs"])
    rows = PgJobQueue(db).list()
    assert len(rows) == 2 and {r.source for r in rows} == {"nightly"}
    assert {r.request["device"] for r in rows} == {"gpu"}
    spec = rows[0].request["nightly"]  # what a worker needs to record the attempt and keep the night's budget
    assert spec["night"] == out["night"] and spec["max_prs"] == 100 and spec["inputs"]["target_rev"]
    # Another machine's worker finished cwm with tonight's inputs, and one works on helium right now.
    from agent.nightly.status import Row
    from agent.scale.attempts import PgAttemptStore

    other = PgAttemptStore(db, tmp_path / "other-machine", "optimum-intel")
    other.record(Row(model_type="cwm", status="tests_failed", inputs=spec["inputs"], finished_at=time.time()))
    with other.type_lock("helium"):
        third = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    skipped = {s["model_type"]: s["detail"] for s in _json.loads(third.stdout)["skipped"]}
    assert "with the same inputs: tests_failed" in skipped["cwm"]
    assert skipped["helium"].startswith("another process is working on it")
    with other.sweep_lock():
        busy = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=600)
    assert busy.returncode == 3 and "another nightly sweep or enqueue" in busy.stderr, busy.stderr[-2000:]
    other.close()
    bad = subprocess.run(cmd[:5] + ["--device", "tpu"], env=env, cwd=TESTS.parent, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "--device must be one of" in bad.stderr and "Traceback" not in bad.stderr


def test_flower_answers_only_with_its_basic_auth(cluster, tmp_path):
    from agent.scale.servers import free_port

    port = free_port()
    env = cluster.env(cluster.database(), tmp_path / "data", FLOWER_BASIC_AUTH="ops:s3cret-flower")
    log = open(tmp_path / "flower.log", "w")
    flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "agent.scale.worker_app", "flower",
                               "--address=127.0.0.1", f"--port={port}"], env=env, cwd=TESTS.parent, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    cluster.procs.append(flower)
    try:
        url = f"http://127.0.0.1:{port}/api/workers"
        deadline = time.monotonic() + 120
        while True:
            try:
                anonymous = httpx.get(url, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, (tmp_path / "flower.log").read_text()[-2000:]
                time.sleep(0.5)
        assert anonymous.status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "s3cret-flower"), timeout=30).status_code == 200
    finally:
        cluster.stop_all()
