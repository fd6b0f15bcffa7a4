"""Where a job's message goes and with what priority (needs the scale extras, no servers)."""

from __future__ import annotations

import pytest

pytest.importorskip("celery", reason="scale mode not installed: pip install -r requirements-scale.lock")

from agent.scale.celery_app import make_celery  # noqa: E402
from agent.scale.publish import Publisher, route  # noqa: E402
from agent.service.queue import Job, JobQueue  # noqa: E402


def _job(source: str, **request) -> Job:
    return Job(id="j1", trigger_key="k", subject="s", source=source, request={"model": "m", **request}, reply={},
               status="queued", created_at=1.0, updated_at=1.0)


def test_people_go_ahead_of_nightly_and_device_jobs_to_their_queue():
    assert route(_job("chat")) == {"queue": "onboard", "routing_key": "onboard", "priority": 9}
    assert route(_job("github"))["priority"] == 9
    nightly = route(_job("nightly", device="gpu", budget_s=240))
    assert nightly == {"queue": "onboard.gpu", "routing_key": "onboard.gpu", "priority": 1, "soft_time_limit": 240.0}


def test_the_engine_settings_give_at_least_once_delivery_one_job_per_process():
    conf = make_celery("amqp://guest@127.0.0.1:1//").conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_max_tasks_per_child == 1
    assert all(q.queue_arguments == {"x-max-priority": 10} for q in conf.task_queues)
    assert conf.broker_transport_options["visibility_timeout"] > 3600  # Redis: longer than any job


class _App:
    def __init__(self):
        self.sent = []

    def send_task(self, name, args, **options):
        self.sent.append((name, args[0], options["priority"]))


def test_each_queued_job_is_sent_once_per_state(tmp_path):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    app = _App()
    pub = Publisher(queue, "", app=app)
    a, _ = queue.enqueue(trigger_key="a", subject="t|a", source="nightly", request={"model": "a"}, reply={})
    b, _ = queue.enqueue(trigger_key="b", subject="t|b", source="chat", request={"model": "b"}, reply={})
    assert pub.publish_queued() == 2 and pub.publish_queued() == 0
    assert app.sent == [("onboard.run_job", a.id, 1), ("onboard.run_job", b.id, 9)]
    queue.update(a.id, status="awaiting_approval")
    queue.approve(a.id, {"approved": True})  # back to queued: a new state, sent again
    assert pub.publish_queued() == 1 and app.sent[-1][1] == a.id


def test_on_redis_the_people_priority_is_inverted_because_kombu_pops_0_first(tmp_path):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    app = _App()
    pub = Publisher(queue, "redis://127.0.0.1:6379/0", app=app)
    queue.enqueue(trigger_key="n", subject="t|n", source="nightly", request={"model": "n"}, reply={})
    queue.enqueue(trigger_key="c", subject="t|c", source="chat", request={"model": "c"}, reply={})
    pub.publish_queued()
    assert [p for _, _, p in app.sent] == [8, 0]  # nightly 1 → 8, chat 9 → 0 (popped first)
