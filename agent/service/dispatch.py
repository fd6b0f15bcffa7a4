"""What a verified chat request or GitHub delivery asks for, and the short answer to it.

Only queue writes happen here (fast); GitHub calls (permission checks,
comments) go to a small background executor, and graph runs to the workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.service.commands import HELP, Approve, Cancel, CommandError, Help, Run, Status, parse
from agent.service.github_webhook import IssueCommand, issue_command
from agent.service.notify import GitHubChannel
from agent.service.queue import Job, JobQueue

log = logging.getLogger(__name__)


@dataclass
class Answer:
    text: str
    job: Job | None = None
    created: bool = False


def describe(job: Job) -> str:
    parts = [f"job `{job.id}`: {job.status}"]
    if job.stage:
        parts.append(f"stage {job.stage}")
    if job.outcome:
        parts.append(f"outcome {job.outcome}")
    if job.pr_url:
        parts.append(job.pr_url)
    if job.thread_id:
        parts.append(f"thread {job.thread_id}")
    return ", ".join(parts) + (f" — {job.message}" if job.message else "")


class Dispatcher:
    def __init__(self, queue: JobQueue, known_targets: set[str], default_target: str, label: str,
                 github: GitHubChannel | None, wake=lambda: None, redact=lambda s: s):
        self.queue, self.known_targets, self.default_target = queue, known_targets, default_target
        self.label, self.github, self.wake, self.redact = label, github, wake, redact
        self.background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onboard-gh")

    # --- shared by every face ---
    def command(self, text: str, *, source: str, trigger_key: str, reply: dict, user: str,
                authorize: dict | None = None) -> Answer:
        try:
            cmd = parse(text, self.known_targets, self.default_target)
        except CommandError as exc:
            return Answer(f"{exc}\n\n{HELP}")
        if isinstance(cmd, Help):
            return Answer(HELP)
        if isinstance(cmd, Run):
            # Chat waits for a human before publishing unless told not to; issues publish directly.
            publish = "dry_run" if cmd.dry_run else ("approval" if source == "chat" and not cmd.approve else "auto")
            request = {"model": cmd.model, "target": cmd.target, "publish": publish, "by": user,
                       "authorize": authorize,
                       # Untrusted: it reaches an LLM prompt only as a quoted block, never a shell.
                       ("chat_text" if source == "chat" else "issue_text"): self.redact(text)[:4000]}
            job, created = self.queue.enqueue(trigger_key=trigger_key, subject=f"{cmd.target}|{cmd.model}",
                                              source=source, request=request, reply=reply)
            if created:
                self.wake()
                return Answer(f"queued job `{job.id}`: {cmd.model} → {cmd.target} ({publish})", job, True)
            return Answer(f"already on it: {describe(job)}", job, False)
        job = self.queue.get(cmd.job)
        if job is None:
            return Answer(f"no job {cmd.job}")
        try:
            if isinstance(cmd, Approve):
                job = self.queue.approve(cmd.job, {"approved": True, "by": user})
                self.wake()
                return Answer(f"approved; publishing {describe(job)}", job)
            if isinstance(cmd, Cancel):
                job = self.queue.cancel(cmd.job)
                self.wake()
                return Answer(f"cancelling {describe(job)}", job)
        except ValueError as exc:
            return Answer(str(exc), job)
        assert isinstance(cmd, Status)
        return Answer(describe(job), job)

    # --- GitHub ---
    def github_delivery(self, event: str, delivery: str, payload: dict) -> dict:
        found = issue_command(event, payload, self.label)
        if found is None:
            return {"ignored": True}
        if isinstance(found, str):
            repo, number = payload["repository"]["full_name"], int(payload["issue"]["number"])
            sender = payload["sender"]["login"]
            self._later(self._answer_issue, repo, number, sender, f"reply:{delivery}", found)
            return {"ignored": True, "reason": found}
        try:
            cmd = parse(found.text, self.known_targets, self.default_target)
        except CommandError as exc:
            self._later(self._answer_issue, found.repo, found.issue, found.sender, f"reply:{delivery}",
                        f"{exc}\n\n{HELP}")
            return {"ignored": True, "reason": "not a valid command"}
        reply = {"kind": "github", "repo": found.repo, "issue": found.issue}
        if isinstance(cmd, Run):
            # Runs are authorised by the worker, so this answer never waits on the GitHub API.
            answer = self.command(found.text, source="github", trigger_key=f"github:{delivery}", reply=reply,
                                  user=found.sender, authorize={"repo": found.repo, "login": found.sender})
            return {"job": answer.job.id, "created": answer.created}
        self._later(self._issue_command, found, f"reply:{delivery}")
        return {"accepted": True}

    def _later(self, fn, *args) -> None:
        self.background.submit(self._guard, fn, *args)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.warning("background GitHub call failed: %s", self.redact(f"{type(exc).__name__}: {exc}"))

    def _allowed(self, repo: str, login: str) -> bool:
        if self.github is None:
            log.info("no GitHub credentials: cannot check %s's permission on %s; ignored", login, repo)
            return False
        return self.github.can_write(repo, login)

    def _answer_issue(self, repo: str, number: int, sender: str, marker: str, text: str) -> None:
        if self._allowed(repo, sender):
            self.github.comment(repo, number, marker, self.redact(text))

    def _issue_command(self, found: IssueCommand, marker: str) -> None:
        if not self._allowed(found.repo, found.sender):
            log.info("%s has no write permission on %s; command ignored", found.sender, found.repo)
            return
        answer = self.command(found.text, source="github", trigger_key=marker, reply={}, user=found.sender)
        self.github.comment(found.repo, found.issue, marker, self.redact(answer.text))


def body_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:24]


def loads(body: bytes) -> dict:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
