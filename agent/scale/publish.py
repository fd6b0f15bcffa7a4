"""Hand queued ledger jobs to the broker: people's requests ahead of nightly, device jobs to their queue.

The ledger decides what runs; a message only says "look at job X". Sending a
job twice is harmless (the task turns a copy into a no-op), so the service
simply sends every queued job it has not sent in this state yet, on every
wake and at start (which also covers jobs queued by a process that died
before sending).
"""

from __future__ import annotations

import threading

from agent.scale.celery_app import PEOPLE_PRIORITY, PRIORITY, make_celery
from agent.scale.devices import queue_name
from agent.service.queue import Job, JobQueue


def route(job: Job) -> dict:
    q = queue_name(job.request.get("device"))
    options = {"queue": q, "routing_key": q, "priority": PRIORITY.get(job.source, PEOPLE_PRIORITY)}
    budget = job.request.get("budget_s")
    if budget:
        # The nightly per-type budget as a soft limit: the job fails in its own process and the ledger says so.
        # No hard limit: Celery acks a hard-killed task as failed in the parent, leaving the ledger row running.
        options["soft_time_limit"] = float(budget)
    return options


class Publisher:
    def __init__(self, queue: JobQueue, broker_url: str, app=None):
        self.queue = queue
        self.app = app or make_celery(broker_url)
        # kombu's Redis transport pops priority 0 first (RabbitMQ delivers the highest first).
        self.invert = broker_url.startswith(("redis://", "rediss://"))
        self._sent: dict[str, float] = {}  # job id -> updated_at when sent
        self._lock = threading.Lock()

    def send(self, job: Job) -> None:
        options = route(job)
        if self.invert:
            options["priority"] = 9 - options["priority"]
        self.app.send_task("onboard.run_job", args=[job.id], **options)

    def publish_queued(self) -> int:
        with self._lock:
            n = 0
            for job in reversed(self.queue.list(limit=1000, status="queued")):  # oldest first
                if self._sent.get(job.id) == job.updated_at:
                    continue
                self.send(job)
                self._sent[job.id] = job.updated_at
                n += 1
            return n
