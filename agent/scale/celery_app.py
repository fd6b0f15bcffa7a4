"""The Celery app: one task (run a ledger job by id), priority queues per device, at-least-once delivery.

A message carries only the job id; the Postgres ledger is the result, so
there is no result backend. Delivery is at least once (late acks, lost-worker
redelivery, prefetch 1) and the task makes duplicates harmless: a job's
advisory lock admits one runner, a final ledger row makes a late copy a
no-op, and the runs cap stops a job that kills its worker every time.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from agent.scale.devices import DEVICES, QUEUE, queue_name

# Chat-ops and GitHub requests (a person waits) ahead of nightly jobs (nobody waits), on every queue.
PRIORITY = {"nightly": 1}
PEOPLE_PRIORITY = 9
BUSY_RETRY_S = 5  # a copy whose job is running elsewhere looks again after this long


def make_celery(broker_url: str) -> Celery:
    app = Celery("onboard", broker=broker_url, set_as_current=False)
    queues = [Queue(queue_name(d), routing_key=queue_name(d), queue_arguments={"x-max-priority": 10})
              for d in (None, *DEVICES)]
    app.conf.update(
        task_queues=queues, task_default_queue=QUEUE, task_create_missing_queues=False,
        task_serializer="json", accept_content=["json"], task_ignore_result=True, result_backend=None,
        task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy process reserves nothing: a later chat job is not stuck behind
        worker_max_tasks_per_child=1,  # one process per job, like the nightly pool: frees torch/OpenVINO memory
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_priority=5, broker_connection_retry_on_startup=True,
        worker_send_task_events=True, task_send_sent_event=True,  # Flower's view
        worker_hijack_root_logger=False,
        # Redis hands an unacked message to another worker after visibility_timeout even while the first
        # still runs it: it must exceed the longest job (20 min budgets; no hard limit is set).
        broker_transport_options={"visibility_timeout": 7200, "queue_order_strategy": "priority"},
    )

    @app.task(bind=True, name="onboard.run_job", max_retries=None)
    def run_job(self, job_id: str) -> str:
        from agent.scale.task import run

        outcome = run(job_id, worker=self.request.hostname or "worker")
        if outcome == "busy":  # never dropped: the holder may still die, and then this copy must run it
            raise self.retry(countdown=BUSY_RETRY_S)
        return outcome

    return app
