"""What a verified chat request or GitHub delivery asks for, and the short answer to it.

Only queue writes happen here (fast); GitHub calls (permission checks,
comments) go to a small background executor, and graph runs to the workers.
A GitHub run request is queued as `authorizing` and admitted by the workers
once its sender's permission is known. Job commands (status, approve,
cancel) act only on jobs of their own origin: an issue's commands on the jobs
that issue started, chat's on chat jobs. The bearer-token jobs API is the
operator's and reaches every job.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agent.service.commands import HELP, Approve, Cancel, CommandError, Help, Run, Status, parse
from agent.service.github_webhook import IssueCommand, issue_command
from agent.service.notify import GitHubChannel, group_table, refusal_text
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


def group_id(trigger_key: str) -> str:
    """The group of a `--target all` request's jobs: stable for its trigger (a redelivery is the same)."""
    return "g" + hashlib.sha256(trigger_key.encode()).hexdigest()[:12]


def group_jobs(queue: JobQueue, group: str, limit: int = 1000) -> list[Job]:
    return [j for j in queue.list(limit=limit) if (j.request or {}).get("group") == group]


class Dispatcher:
    def __init__(self, queue: JobQueue, known_targets: set[str], default_target: str, label: str,
                 github: GitHubChannel | None, wake=lambda: None, redact=lambda s: s):
        self.queue, self.known_targets, self.default_target = queue, known_targets, default_target
        self.label, self.github, self.wake, self.redact = label, github, wake, redact
        self.background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onboard-gh")

    # --- shared by every face ---
    def command(self, text: str, *, source: str, trigger_key: str, reply: dict, user: str,
                authorize: dict | None = None) -> Answer:
        """`authorize` ({repo, login}): the sender still needs a permission check before the run may queue.

        `reply` is also the origin job commands are scoped to (a GitHub issue's repo and number).
        """
        try:
            cmd = parse(text, self.known_targets, self.default_target)
        except CommandError as exc:
            return Answer(f"{exc}\n\n{HELP}")
        if isinstance(cmd, Help):
            return Answer(HELP)
        if isinstance(cmd, Run):
            # Chat waits for a human before publishing unless told not to; issues publish directly.
            publish = "dry_run" if cmd.dry_run else ("approval" if source == "chat" and not cmd.approve else "auto")
            targets = sorted(self.known_targets) if cmd.target == "all" else [cmd.target]
            # `all`: one job per target, each its own subject, queue slot and run, reporting as one group
            group = group_id(trigger_key) if cmd.target == "all" else None
            lines, jobs, any_created = [], [], False
            for target in targets:
                request = {"model": cmd.model, "target": target, "publish": publish, "by": user,
                           "authorize": authorize,
                           # Untrusted: it reaches an LLM prompt only as a quoted block, never a shell.
                           ("chat_text" if source == "chat" else "issue_text"): self.redact(text)[:4000]}
                if group:
                    request["group"] = group
                key = trigger_key if len(targets) == 1 else f"{trigger_key}:{target}"
                job, created = self.queue.enqueue(trigger_key=key, subject=f"{target}|{cmd.model}", source=source,
                                                  request=request, reply=reply, authorized=authorize is None)
                jobs.append(job)
                any_created = any_created or created
                lines.append(f"queued job `{job.id}`: {cmd.model} → {target} ({publish})" if created
                             else f"already on it: {describe(job)}")
            if any_created:
                self.wake()
            text_out = group_table(jobs) if group else "\n".join(lines)
            return Answer(text_out, jobs[0], any_created)
        # Not found and not ours look the same: ids and thread ids are guessable.
        job = self.queue.find(cmd.job, lambda j: belongs(j, source, reply))
        if job is None:
            return Answer(f"no job {cmd.job}")
        try:
            if isinstance(cmd, Approve):
                job = self.queue.approve(job.id, {"approved": True, "by": user})
                self.wake()
                return Answer(f"approved; publishing {describe(job)}", job)
            if isinstance(cmd, Cancel):
                job = self.queue.cancel(job.id)
                self.wake()
                return Answer(f"cancelling {describe(job)}", job)
        except ValueError as exc:
            return Answer(str(exc), job)
        assert isinstance(cmd, Status)
        return Answer(describe(job), job)

    # --- GitHub ---
    def github_delivery(self, event: str, payload: dict) -> dict:
        found = issue_command(event, payload, self.label)
        if found is None:
            return {"ignored": True}
        marker = f"reply:{found.key}"
        if not found.text:
            why = f"labelled `{self.label}` but no `/onboard MODEL` line in the title or body"
            self._later(self._answer_issue, found, marker, why)
            return {"ignored": True, "reason": why}
        try:
            cmd = parse(found.text, self.known_targets, self.default_target)
        except CommandError as exc:
            self._later(self._answer_issue, found, marker, f"{exc}\n\n{HELP}")
            return {"ignored": True, "reason": "not a valid command"}
        origin = {"kind": "github", "repo": found.repo, "issue": found.issue}
        if isinstance(cmd, Run):
            # Admitted by the workers once the sender's permission is known, so this never waits on GitHub.
            answer = self.command(found.text, source="github", trigger_key=f"github:{found.key}", reply=origin,
                                  user=found.sender, authorize={"repo": found.repo, "login": found.sender})
            return {"job": answer.job.id, "created": answer.created}
        self._later(self._issue_command, found, marker, origin)
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

    def _answer_issue(self, found: IssueCommand, marker: str, text: str) -> None:
        if self._allowed(found.repo, found.sender):
            self.github.comment(found.repo, found.issue, marker, self.redact(text))
        elif self.github is not None:
            self.github.comment(found.repo, found.issue, marker, refusal_text(found.sender, found.repo))

    def _issue_command(self, found: IssueCommand, marker: str, origin: dict) -> None:
        if not self._allowed(found.repo, found.sender):
            log.info("%s has no write permission on %s; command refused", found.sender, found.repo)
            if self.github is not None:
                self.github.comment(found.repo, found.issue, marker, refusal_text(found.sender, found.repo))
            return
        answer = self.command(found.text, source="github", trigger_key=marker, reply=origin, user=found.sender)
        self.github.comment(found.repo, found.issue, marker, self.redact(answer.text))


def belongs(job: Job, source: str, origin: dict) -> bool:
    """May a command from `source` (at `origin`) see or change `job`?"""
    if job.source != source:
        return False
    if source == "github":
        return (job.reply.get("repo"), job.reply.get("issue")) == (origin.get("repo"), origin.get("issue"))
    return True


def body_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:24]


def loads(body: bytes) -> dict:
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
