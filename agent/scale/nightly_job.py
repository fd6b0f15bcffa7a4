"""A nightly job on a scale-mode worker: the sweep's per-type rules, with the store and budgets in Postgres.

As in the sweep, one process works on a type at a time (the type lock), a job
records its own attempt (so the next planner, on any machine, skips a type
tried with the same inputs), and no new type starts once the night's PR or
token budget is reached. Workers run concurrently on many machines, so the
PR budget is also checked where it is spent: publishing claims one of the
night's slots first, and a job that finds none ends `budget_reached`,
verified but not published. Both end the job as done, with the reason; the
type is not recorded as attempted, so the next night tries it again.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Callable, Literal

from pydantic import BaseModel

from agent.nightly import status
from agent.nightly.store import Inputs
from agent.scale.attempts import NightSpend, PgAttemptStore
from agent.service.queue import Job
from agent.service.workers import RunResult
from agent.settings import Settings

log = logging.getLogger(__name__)

# How a nightly job ends when it does not run the graph to its end (Job.outcome).
Outcome = Literal["budget_reached", "type_busy"]


def _ended(outcome: Outcome, message: str, thread_id: str = "") -> RunResult:
    """A nightly job that ends without running the graph to its end: done, with the reason (not a failure)."""
    return RunResult(status="done", outcome=outcome, message=message, thread_id=thread_id)


class NightRequest(BaseModel):
    """What `onboard nightly --enqueue` puts under request["nightly"]: the night and its budget."""

    night: str
    inputs: Inputs
    max_prs: int
    token_budget: int


class PrBudgetReached(Exception):
    """The night's PR slots are taken: this verified change is not published."""


class BudgetForge:
    """The worker's forge, with one of the night's PR slots claimed before each publish."""

    def __init__(self, inner, spend: NightSpend, model_type: str, max_prs: int, job_id: str):
        self.inner, self.spend, self.model_type, self.max_prs, self.job_id = inner, spend, model_type, max_prs, job_id

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def publish(self, **kwargs):
        if not self.spend.claim_pr(self.model_type, self.max_prs, self.job_id):
            raise PrBudgetReached(f"PR budget of {self.max_prs} per night reached")
        try:
            return self.inner.publish(**kwargs)
        except BaseException:
            self.spend.release_pr(self.model_type)  # nothing was published: the slot is the night's again
            raise


def _stored_state(settings: Settings, thread_id: str) -> dict | None:
    from agent.graph.run import stored_state

    return stored_state(settings, thread_id)


class NightlyRecorder:
    """Wraps the worker's JobRunner; jobs without request["nightly"] pass through untouched."""

    def __init__(self, inner, settings: Settings, url: str,
                 state: Callable[[Settings, str], dict | None] = _stored_state):
        self.inner, self.settings, self.url, self.state = inner, settings, url, state

    def run(self, job: Job, resume, on_stage, on_thread) -> RunResult:
        spec = job.request.get("nightly")
        if job.source != "nightly" or not isinstance(spec, dict):
            return self.inner.run(job, resume, on_stage, on_thread)
        night = NightRequest.model_validate(spec)
        model_type, target = job.request["model"], job.request["target"]
        store = PgAttemptStore(self.url, self.settings.data_dir, target)
        spend = NightSpend(self.url, night.night, target)
        try:
            with store.type_lock(model_type) as mine:
                if not mine:
                    return _ended("type_busy", "another process is working on this type (a sweep's job or "
                                               "another worker); that process records it")
                reason = None if spend.has_pr(model_type) else self._exhausted(night, spend)
                if reason:
                    log.info("job %s: %s not started: %s", job.id, model_type, reason)
                    return _ended("budget_reached", f"not started: {reason}")
                return self._run(job, resume, on_stage, on_thread, night, store, spend)
        finally:
            store.close()
            spend.close()

    @staticmethod
    def _exhausted(night: NightRequest, spend: NightSpend) -> str | None:
        from agent.nightly.sweep import Budget

        prs, tokens = spend.totals()
        # The night has no wall-time budget here: Celery's soft limit bounds each type.
        return Budget(wall_s=math.inf, tokens=night.token_budget, prs=night.max_prs).exhausted(0.0, tokens, prs)

    def _run(self, job: Job, resume, on_stage, on_thread, night: NightRequest, store: PgAttemptStore,
             spend: NightSpend) -> RunResult:
        from celery.exceptions import SoftTimeLimitExceeded

        from agent.graph.run import ThreadBusy
        from agent.nightly.sweep import llm_configured
        from agent.service.workers import Cancelled

        model_type = job.request["model"]
        seen = {"node": None, "thread": job.thread_id}

        def stage(node: str) -> None:
            seen["node"] = node
            on_stage(node)

        def thread(tid: str) -> None:
            seen["thread"] = tid
            on_thread(tid)

        runner = self.inner
        if hasattr(runner, "forge_factory"):  # the GraphRunner: its forge claims a PR slot before publishing
            from agent.graph.run import select_forge

            base = runner.forge_factory or (lambda: select_forge(self.settings))
            runner = copy.copy(runner)
            runner.forge_factory = lambda: BudgetForge(base(), spend, model_type, night.max_prs, job.id)
        start = time.monotonic()

        def record(row: status.Row) -> None:
            row.inputs = night.inputs.model_dump()
            row.seconds = round(time.monotonic() - start, 2)
            row.finished_at = time.time()
            if row.status in status.ATTEMPTED:
                store.record(row)
            spend.set_tokens(model_type, row.tokens, job.id)

        try:
            result = runner.run(job, resume, stage, thread)
        except PrBudgetReached as exc:
            log.info("job %s: %s verified, not published: %s", job.id, model_type, exc)
            return _ended("budget_reached", f"verified; not published: {exc}", seen["thread"] or "")
        except SoftTimeLimitExceeded:  # the per-type budget: a `timeout` row, as in the sweep
            record(status.timeout(model_type, float(job.request.get("budget_s") or 0), seen["node"]))
            raise
        except (Cancelled, ThreadBusy):  # not an attempt: cancelled, or running elsewhere
            raise
        except Exception as exc:
            values = (self.state(self.settings, seen["thread"]) if seen["thread"] else None) or {}
            node = status.running_after(seen["node"]) if seen["node"] else "intake"
            record(status.from_state(model_type, values, llm_configured=llm_configured(self.settings),
                                     error={"node": node, "message": f"{type(exc).__name__}: "
                                                                     f"{' '.join(str(exc).split())[:400]}"}))
            raise
        if result.status == "done":
            values = (self.state(self.settings, result.thread_id) if result.thread_id else None) or {}
            record(status.from_state(model_type, values, llm_configured=llm_configured(self.settings)))
        return result
