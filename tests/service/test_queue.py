"""The SQLite job queue: unique triggers, one active job per model, recovery, approval, cancel."""

from __future__ import annotations

import threading

import pytest

from agent.service.queue import JobQueue


def enqueue(q, key, model="llama"):
    return q.enqueue(trigger_key=key, subject=f"optimum-intel|{model}", source="chat",
                     request={"model": model, "target": "optimum-intel"}, reply={})


def test_duplicate_trigger_returns_the_same_job(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    first, created = enqueue(q, "chat:1")
    again, created2 = enqueue(q, "chat:1")
    assert created and not created2 and again.id == first.id
    assert len(q.list()) == 1


def test_one_active_job_per_subject(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    first, _ = enqueue(q, "chat:1")
    other, created = enqueue(q, "chat:2")
    assert not created and other.id == first.id
    q.update(first.id, status="done")
    _, created3 = enqueue(q, "chat:3")
    assert created3


def test_concurrent_enqueues_create_one_job(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(enqueue(q, "github:d1")[1])) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and len(q.list()) == 1


def test_deliveries_are_recorded_once(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    assert q.record_delivery("d1") and not q.record_delivery("d1")
    assert JobQueue(tmp_path / "q.sqlite").record_delivery("d1") is False  # survives a restart


def test_recover_requeues_running_jobs(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    job, _ = enqueue(q, "chat:1")
    assert q.claim("w0").id == job.id and q.claim("w1") is None
    restarted = JobQueue(tmp_path / "q.sqlite")
    assert restarted.recover() == [job.id]
    again = restarted.claim("w0")
    assert again.id == job.id and again.runs == 2


def test_approval_only_when_waiting(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    job, _ = enqueue(q, "chat:1")
    with pytest.raises(ValueError):
        q.approve(job.id, {"approved": True})
    q.update(job.id, status="awaiting_approval", thread_id="t-1")
    back = q.approve("t-1", {"approved": True, "by": "ann"})  # by thread id too
    assert back.status == "queued" and '"ann"' in back.approval


def test_cancel(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    queued, _ = enqueue(q, "chat:1", "a")
    running, _ = enqueue(q, "chat:2", "b")
    q.update(running.id, status="running")
    assert q.cancel(queued.id).status == "cancelled"
    assert q.cancel(running.id).cancel_requested
    with pytest.raises(ValueError):
        q.cancel(queued.id)
    with pytest.raises(KeyError):
        q.cancel("nope")


def test_delivery_keys_outlive_recovery_and_failed_ones_are_forgotten(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    q.record_delivery("old")
    q.record_delivery("failed")
    q.forget_delivery("failed")
    assert q.record_delivery("failed")  # a redelivery after a failed handling is not a replay
    JobQueue(tmp_path / "q.sqlite").recover()
    assert not q.record_delivery("old")  # keys name signed content: a replay months later is still one


def test_an_unauthorised_request_neither_takes_nor_joins_the_slot(tmp_path):
    q = JobQueue(tmp_path / "q.sqlite")
    stranger, _ = q.enqueue(trigger_key="github:c1", subject="optimum-intel|llama", source="github",
                            request={"model": "llama", "authorize": {"repo": "a/b", "login": "eve"}}, reply={},
                            authorized=False)
    operator, created = enqueue(q, "chat:1")
    assert stranger.status == "authorizing" and created and operator.status == "queued"
    writer, _ = q.enqueue(trigger_key="github:c2", subject="optimum-intel|llama", source="github",
                          request={"model": "llama", "authorize": {"repo": "a/b", "login": "alice"}}, reply={},
                          authorized=False)
    assert [j.id for j in q.pending()] == [stranger.id, writer.id]
    assert q.admit(stranger.id, "refused", "eve may not").status == "unauthorized"
    joined = q.admit(writer.id, "allowed")
    assert joined.status == "joined" and operator.id in joined.message  # joins only an authorised job
    assert q.admit(writer.id, "allowed") is None  # settled once
    q.update(operator.id, status="done")
    late, _ = q.enqueue(trigger_key="github:c3", subject="optimum-intel|llama", source="github",
                        request={"model": "llama", "authorize": {"repo": "a/b", "login": "alice"}}, reply={},
                        authorized=False)
    admitted = q.admit(late.id, "allowed")
    assert admitted.status == "queued" and admitted.request["authorize"]["checked"]
    assert q.admit(q.enqueue(trigger_key="github:c4", subject="x|y", source="github", request={}, reply={},
                             authorized=False)[0].id, "unknown", "lookup failed").notified
