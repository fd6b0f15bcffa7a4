"""Where a job's progress and outcome go: its GitHub issue, or a chat response URL.

GitHub messages are upserted by a hidden marker per job (one progress comment
edited in place, one final comment), so a restart or a retried notification
never adds a second comment.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable
from urllib.parse import urlparse

import httpx

from agent.service.queue import FINAL, Job
from tools.forge.github import GitHubIssues

log = logging.getLogger(__name__)
SETTLED = (*FINAL, "awaiting_approval")


def refusal_text(login: str, repo: str) -> str:
    """The one answer a sender without write permission gets, whatever the command."""
    return (f"@{login}: only people with write access to {repo} can run `/onboard` commands here; "
            "nothing was queued.")


class GitHubChannel:
    def __init__(self, issues: GitHubIssues, permission_cache_s: float = 60.0):
        self.issues = issues
        self.cache_s = permission_cache_s
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def can_write(self, repo: str, login: str) -> bool:
        key, now = (repo, login), time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and now - hit[0] < self.cache_s:
            return hit[1]
        allowed = self.issues.can_write(repo, login)
        with self._lock:
            self._cache[key] = (now, allowed)
        return allowed

    def comment(self, repo: str, issue: int, marker: str, text: str) -> None:
        self.issues.upsert_comment(repo, issue, marker, text)


def allowed_url(url: str, hosts: list[str]) -> bool:
    parts = urlparse(url)
    return (parts.scheme == "https" and parts.hostname in hosts) or (
        parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") and parts.hostname in hosts)


class CallbackChannel:
    """Slack response_url (or another chat's callback): JSON `{"text": …}` posts."""

    def __init__(self, hosts: list[str], timeout_s: float = 5.0):
        self.hosts = hosts
        self.client = httpx.Client(timeout=timeout_s, trust_env=False, follow_redirects=False)

    def post(self, url: str, text: str) -> None:
        if not allowed_url(url, self.hosts):
            log.warning("callback host %s not in ONBOARD_SERVICE_CALLBACK_HOSTS; message dropped",
                        urlparse(url).hostname)
            return
        self.client.post(url, json={"response_type": "ephemeral", "replace_original": False,
                                    "text": text}).raise_for_status()


def _cell(text: str, limit: int = 160) -> str:
    # A table cell: one line, no pipe (it would end the cell), bounded.
    return " ".join(str(text).replace("|", "/").split())[:limit]


def group_table(jobs: list[Job]) -> str:
    """One table for a `--target all` request: a row per target, however far each has got."""
    jobs = sorted(jobs, key=lambda j: j.request.get("target", ""))
    model = jobs[0].request.get("model", "") if jobs else ""
    done = sum(j.status in FINAL for j in jobs)
    lines = [f"Onboarder: `{_cell(model, 100)}` → every target ({done}/{len(jobs)} finished)", "",
             "| target | state | outcome | PR / reason | job |", "|---|---|---|---|---|"]
    for j in jobs:
        state = j.status + (f" ({_cell(j.stage, 40)})" if j.stage and j.status not in FINAL else "")
        lines.append(f"| {_cell(j.request.get('target', ''), 40)} | {state} | {_cell(j.outcome, 40)} | "
                     f"{_cell(j.pr_url or j.message)} | `{j.id}` |")
    return "\n".join(lines)


class Notifier:
    """Routes a job's messages by the kind of trigger it came from.

    Jobs of one `--target all` request share a `group` (their request says so): they report through
    one table instead of a message each. On GitHub that table is one comment, edited as targets move
    on; a chat callback cannot edit what it posted, so it gets the table when every target has
    settled (finished, or waiting for an approval), and again when that changes. `group_jobs(group)` reads the group's jobs (the queue's current rows).
    """

    def __init__(self, github: GitHubChannel | None, callback: CallbackChannel | None,
                 group_jobs: Callable[[str], list[Job]] | None = None):
        self.github, self.callback, self.group_jobs = github, callback, group_jobs
        self._posted: set[tuple] = set()  # group states whose table went to a chat callback (this process)
        self._lock = threading.Lock()

    def _group(self, job: Job) -> tuple[str, list[Job]] | None:
        group = (job.request or {}).get("group")
        if not group or self.group_jobs is None:
            return None
        jobs = {j.id: j for j in self.group_jobs(group)}
        jobs[job.id] = job  # the caller's copy is the newest for its own row
        return group, list(jobs.values())

    def _send_group(self, job: Job, group: str, jobs: list[Job], final: bool) -> None:
        kind = (job.reply or {}).get("kind")
        if kind == "callback":
            # Settled: nothing more happens without a person (finished, or waiting for an approval).
            settled = all(j.status in SETTLED or (final and j.id == job.id) for j in jobs)
            seen = (group, tuple(sorted((j.id, j.status) for j in jobs)))
            with self._lock:
                if not settled or seen in self._posted:
                    return
                self._posted.add(seen)
        self._send(job, f"all:{group}", group_table(jobs), keyed=False)

    def _send(self, job: Job, marker: str, text: str, keyed: bool = True) -> None:
        reply = job.reply or {}
        kind = reply.get("kind")
        if kind == "github":
            if self.github is None:
                log.info("job %s: no GitHub credentials; issue %s#%s not updated", job.id, reply.get("repo"),
                         reply.get("issue"))
                return
            self.github.comment(reply["repo"], int(reply["issue"]), f"{marker}:{job.id}" if keyed else marker, text)
        elif kind == "callback" and self.callback is not None:
            self.callback.post(reply["url"], text)

    def progress(self, job: Job, text: str) -> None:
        grouped = self._group(job)
        if grouped:
            self._send_group(job, *grouped, final=False)
            return
        self._send(job, "progress", f"Onboarder job `{job.id}` ({job.request.get('model')} → "
                                    f"{job.request.get('target')}): {text}")

    def final(self, job: Job, text: str) -> None:
        grouped = self._group(job)
        if grouped:
            self._send_group(job, *grouped, final=True)
            return
        self._send(job, "final", text)
