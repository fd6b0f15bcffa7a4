"""Where a job's progress and outcome go: its GitHub issue, or a chat response URL.

GitHub messages are upserted by a hidden marker per job (one progress comment
edited in place, one final comment), so a restart or a retried notification
never adds a second comment.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlparse

import httpx

from agent.service.queue import Job
from tools.forge.github import GitHubIssues

log = logging.getLogger(__name__)


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


class Notifier:
    """Routes a job's messages by the kind of trigger it came from."""

    def __init__(self, github: GitHubChannel | None, callback: CallbackChannel | None):
        self.github, self.callback = github, callback

    def _send(self, job: Job, marker: str, text: str) -> None:
        reply = job.reply or {}
        kind = reply.get("kind")
        if kind == "github":
            if self.github is None:
                log.info("job %s: no GitHub credentials; issue %s#%s not updated", job.id, reply.get("repo"),
                         reply.get("issue"))
                return
            self.github.comment(reply["repo"], int(reply["issue"]), f"{marker}:{job.id}", text)
        elif kind == "callback" and self.callback is not None:
            self.callback.post(reply["url"], text)

    def progress(self, job: Job, text: str) -> None:
        self._send(job, "progress", f"Onboarder job `{job.id}` ({job.request.get('model')} → "
                                    f"{job.request.get('target')}): {text}")

    def final(self, job: Job, text: str) -> None:
        self._send(job, "final", text)
