"""The body of a Celery job: the same `WorkerPool.process` the embedded threads run.

It runs in a fresh worker process per job (worker_max_tasks_per_child=1), so
the service objects are built here, from the same settings the service reads.
"""

from __future__ import annotations

import logging
from typing import Literal

log = logging.getLogger(__name__)

Outcome = Literal["ran", "noop", "busy"]


def run(job_id: str, worker: str) -> Outcome:
    from agent.scale.pg import advisory_lock
    from agent.scale.settings import backend
    from agent.service.app import build_service
    from agent.service.settings import ServiceSettings
    from agent.settings import Settings
    from tools.forge.github import GitHubConfig

    url = backend().checkpoint_url
    # One runner per job across machines; Postgres frees the lock the moment a killed worker's socket closes.
    with advisory_lock(url, f"job:{job_id}") as got:
        if not got:
            log.info("job %s runs elsewhere; this copy retries later", job_id)
            return "busy"
        service = build_service(Settings(), ServiceSettings(), GitHubConfig(), start_workers=False)
        try:
            job = service.queue.start(job_id, worker)
            if job is None:  # final, waiting for a person, or unknown: a duplicate delivery
                log.info("job %s: nothing to do (duplicate delivery)", job_id)
                return "noop"
            log.info("job %s: run %d on %s", job_id, job.runs, worker)
            service.pool.runner = _Rehome(service.pool.runner, service.settings, worker)
            service.pool.process(job)
            return "ran"
        finally:
            service.dispatcher.background.shutdown(wait=False)
            service.queue.close()


class _Rehome:
    """A resume re-creates here what its checkpoint points to on another worker's disk (agent.graph.recreate);
    what cannot be re-created fails the job in one line naming it."""

    def __init__(self, runner, settings, worker: str):
        self.runner, self.settings, self.worker = runner, settings, worker

    def run(self, job, resume, on_stage, on_thread):
        from agent.graph.run import stored_state
        from agent.graph.recreate import recreate

        state = stored_state(self.settings, job.thread_id) if job.thread_id else None
        if state and state.get("job_dir"):
            if made := recreate(state, self.settings, worker=self.worker):
                log.info("job %s: re-created here: %s", job.id, ", ".join(made))
        return self.runner.run(job, resume, on_stage, on_thread)
