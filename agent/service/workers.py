"""Worker threads: admit requests, claim a job, run it, tell the trigger how it went.

Admission (the sender's permission, for GitHub requests) has its own thread,
so a long graph run never delays it: a request is admitted or refused before
it may take or join a job, and a refused sender is told so.

The runner and the notifier are Protocols so tests can swap the graph for a
scripted runner while the queue, the GitHub forge and the comments stay real.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Literal, Protocol

from pydantic import BaseModel

from agent.service.notify import refusal_text
from agent.service.queue import Job, JobQueue, Verdict

log = logging.getLogger(__name__)


class Cancelled(Exception):
    pass


class RunResult(BaseModel):
    status: Literal["done", "awaiting_approval"]
    thread_id: str = ""
    outcome: str = ""
    message: str = ""
    pr_url: str = ""


class JobRunner(Protocol):
    def run(self, job: Job, resume: dict | None, on_stage: Callable[[str], None],
            on_thread: Callable[[str], None]) -> RunResult: ...


class Notifier(Protocol):
    def progress(self, job: Job, text: str) -> None: ...

    def final(self, job: Job, text: str) -> None: ...


Authorizer = Callable[[str, str], bool]  # (repo, login) -> may this person run commands there?


def final_text(job: Job) -> str:
    head = f"Onboarder job `{job.id}` ({job.request.get('model')} → {job.request.get('target')})"
    if job.status == "unauthorized":
        auth = job.request.get("authorize") or {}
        return refusal_text(auth.get("login", "?"), auth.get("repo", "?"))
    if job.status == "joined":
        return f"{head}: {job.message}; this request joined it."
    if job.status == "cancelled":
        return f"{head}: cancelled."
    if job.status == "failed":
        return f"{head} failed: {job.message}\nNothing was published."
    if job.outcome == "pr":
        return f"{head}: verified; pull request {job.pr_url}"
    show = f"\nReport: `onboard show {job.thread_id}`" if job.thread_id else ""
    return f"{head}: {job.outcome or 'finished'} — {job.message}{show}"


class WorkerPool:
    def __init__(self, queue: JobQueue, runner: JobRunner, notifier: Notifier, *, concurrency: int = 1,
                 authorizer: Authorizer | None = None, redact: Callable[[str], str] = lambda s: s,
                 poll_s: float = 1.0, renotify_s: float = 30.0, max_runs: int = 5,
                 publish: Callable[[], object] | None = None):
        """`publish`: scale mode, where Celery workers run the jobs; called whenever a job may have been queued."""
        self.queue, self.runner, self.notifier = queue, runner, notifier
        self.publish = publish
        self.concurrency, self.authorizer, self.redact = concurrency, authorizer, redact
        self.poll_s, self.renotify_s, self.max_runs = poll_s, renotify_s, max_runs
        self._wake = threading.Event()
        self._admit_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_flush = 0.0
        self._flush_lock = threading.Lock()
        self._final_lock = threading.Lock()

    # --- lifecycle ---
    def start(self) -> list[str]:
        """Requeue what a previous process left running, then start the threads."""
        if self.publish is not None:
            # Other machines run jobs now: a `running` row is theirs (the broker redelivers a dead one's).
            resumed = []
            self._publish()
        else:
            resumed = self.queue.recover()
        if resumed:
            log.info("resuming %d unfinished job(s): %s", len(resumed), ", ".join(resumed))
        admit = threading.Thread(target=self._admit_loop, daemon=True, name="onboard-admit")
        admit.start()
        self._threads.append(admit)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, args=(f"worker-{i}",), daemon=True, name=f"onboard-worker-{i}")
            t.start()
            self._threads.append(t)
        return resumed

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._admit_wake.set()
        for t in self._threads:
            t.join(timeout)

    def wake(self) -> None:
        """Something changed (a new job, an approval, a cancel): admit, claim and notify without waiting."""
        self._last_flush = 0.0
        self._admit_wake.set()
        self._wake.set()
        self._publish()

    def _publish(self) -> None:
        if self.publish is None:
            return
        try:
            self.publish()
        except Exception as exc:  # the broker is down: the jobs stay queued and go out on the next wake
            log.warning("could not hand queued jobs to the broker: %s", self.redact(str(exc)))

    def _admit_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.admit_pending()
                if self.publish is not None:  # no worker threads here: this loop sends and re-sends
                    self._publish()
                    self.flush_notifications()
            except Exception:  # e.g. the queue file is locked too long: the jobs stay pending, tried again
                log.exception("admission failed")
            self._admit_wake.wait(self.poll_s)
            self._admit_wake.clear()

    # --- admission ---
    def admit_pending(self) -> list[Job]:
        """Check each pending request's sender; queue, join or refuse it (and tell a refused sender)."""
        done = []
        for job in self.queue.pending():
            auth = job.request.get("authorize") or {}
            verdict, why = self._verdict(job.id, auth.get("repo", ""), auth.get("login", ""))
            job = self.queue.admit(job.id, verdict, why)
            if job is None:  # settled by another thread, or cancelled meanwhile
                continue
            if job.status in ("unauthorized", "joined"):
                job = self._final(job)
            elif job.status == "queued":
                self._wake.set()
                self._publish()
            done.append(job)
        return done

    def _verdict(self, job_id: str, repo: str, login: str) -> tuple[Verdict, str]:
        if self.authorizer is None:
            log.info("job %s: no GitHub credentials to check %s on %s; refused", job_id, login, repo)
            return "refused", f"no GitHub credentials to check {login}'s permission on {repo}"
        try:
            allowed = self.authorizer(repo, login)
        except Exception as exc:  # unknown is not yes; no comment either, the sender is unverified
            log.warning("job %s: permission lookup failed: %s", job_id, self.redact(str(exc)))
            return "unknown", self.redact(f"permission check failed: {exc}")
        if not allowed:
            log.info("job %s: %s has no write permission on %s; refused", job_id, login, repo)
            return "refused", f"{login} may not run commands on {repo}"
        return "allowed", ""

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            self.flush_notifications()
            job = self.queue.claim(name)
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            try:
                self.process(job)
            except Exception:  # e.g. the queue file is locked too long: the job stays running until restart
                log.exception("worker %s lost job %s", name, job.id)

    # --- one job ---
    def process(self, job: Job) -> Job:
        auth = job.request.get("authorize")
        if auth and not auth.get("checked"):
            # Queued by an older version that authorised in the worker: admit it like any new request.
            log.info("job %s: sender not admitted yet; back to admission", job.id)
            self.queue.update(job.id, status="authorizing", worker="")
            self.admit_pending()
            return self.queue.get(job.id)
        if job.runs > self.max_runs:
            # A job that killed its process every time must not take the service down on every start.
            return self._final(self.queue.update(job.id, status="failed",
                                                 message=f"gave up after {self.max_runs} runs"))
        resume = json.loads(job.approval) if job.approval else None
        self._progress(job, "resuming" if job.runs > 1 else "started")
        try:
            result = self.runner.run(job, resume, lambda stage: self._stage(job, stage),
                                     lambda tid: self.queue.update(job.id, thread_id=tid))
        except Cancelled:
            job = self.queue.update(job.id, status="cancelled", message="cancelled")
        except Exception as exc:  # the job fails, the worker lives on
            log.warning("job %s failed: %s", job.id, self.redact(f"{type(exc).__name__}: {exc}"))
            job = self.queue.update(job.id, status="failed", message=self.redact(str(exc))[:1000])
        else:
            if result.status == "awaiting_approval":
                job = self.queue.update(job.id, status="awaiting_approval", stage="review", approval="",
                                        thread_id=result.thread_id, message=self.redact(result.message))
                self._progress(job, f"verified; waiting for approval: `/onboard approve {job.id}` "
                                    f"(or `/onboard cancel {job.id}`)")
                return job
            job = self.queue.update(job.id, status="done", outcome=result.outcome, thread_id=result.thread_id,
                                    message=self.redact(result.message)[:1000], pr_url=result.pr_url, approval="")
        return self._final(job)

    def _stage(self, job: Job, stage: str) -> None:
        current = self.queue.get(job.id)
        if current is not None and current.cancel_requested:
            raise Cancelled()
        self.queue.update(job.id, stage=stage)
        log.info("job %s: stage %s done", job.id, stage)  # the node log a resumed run is checked against
        self._progress(job, f"stage `{stage}` done")

    def _progress(self, job: Job, text: str) -> None:
        try:
            self.notifier.progress(job, self.redact(text))
        except Exception as exc:  # progress is best effort; the final message is retried
            log.warning("progress for job %s not sent: %s", job.id, self.redact(str(exc)))

    def _final(self, job: Job) -> Job:
        # One sender at a time, re-checked: admission, a worker and the flush may reach the same job,
        # and a comment upsert (list, then create) is not atomic on GitHub's side.
        with self._final_lock:
            current = self.queue.get(job.id)
            if current is not None and current.notified:
                return current
            try:
                self.notifier.final(job, self.redact(final_text(job)))
            except Exception as exc:
                log.warning("final message for job %s not sent (will retry): %s", job.id, self.redact(str(exc)))
                return job
            return self.queue.update(job.id, notified=1)

    def flush_notifications(self, force: bool = False) -> None:
        """Send final messages a dead process or a failed call left unsent (idempotent per job)."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.renotify_s:
            return
        if not self._flush_lock.acquire(blocking=False):
            return
        try:
            self._last_flush = now
            for job in self.queue.unnotified():
                self._final(job)
        finally:
            self._flush_lock.release()
