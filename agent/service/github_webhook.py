"""GitHub webhooks: signature check, replay keys, and turning an event into a command request.

The signature covers the body only, never the X-GitHub-Delivery header, so
de-duplication and job triggers key on signed content: a comment's id, an
issue's id with the action and label. A captured delivery replayed with a
fresh delivery id is then recognised. The sender's write permission is
checked before a request may queue or join a job (by the workers'
admission step, which may call the API; the webhook answers at once). That
includes labelled issues: issue templates can apply a label for anyone.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from agent.service.commands import find_command


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


def _issue_key(payload: dict) -> str:
    issue = payload["issue"]
    return str(issue["id"]) if issue.get("id") is not None else f"{payload['repository']['full_name']}#{issue['number']}"


def delivery_key(event: str, payload: dict, body: bytes) -> str:
    """What makes a delivery new, from signed content only; any other event: the signed body itself."""
    try:
        action = str(payload.get("action", ""))
        if event == "issue_comment" and payload["comment"].get("id") is not None:
            return f"comment:{payload['comment']['id']}:{action}"
        if event == "issues":
            label = (payload.get("label") or {}).get("name", "") if action in ("labeled", "unlabeled") else ""
            return f"issue:{_issue_key(payload)}:{action}:{label}"
    except (KeyError, TypeError, AttributeError):
        pass
    return f"{event}:body:{hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class IssueCommand:
    repo: str  # owner/name the issue lives in
    issue: int
    sender: str
    key: str  # what asked, from signed content: "comment:<id>" or "issue:<id>:<sender>"
    text: str  # the `/onboard …` line, still unparsed; "" for a labelled issue without one


def issue_command(event: str, payload: dict, label: str) -> IssueCommand | None:
    """The command a delivery carries (text "" when it should carry one and does not); None when none."""
    try:
        repo = payload["repository"]["full_name"]
        sender = payload["sender"]["login"]
        action = payload.get("action")
        if event == "issues" and action in ("opened", "labeled"):
            issue = payload["issue"]
            names = {lbl.get("name") for lbl in issue.get("labels") or []}
            if action == "labeled" and (payload.get("label") or {}).get("name") != label:
                return None
            if action == "opened" and label not in names:
                return None
            text = find_command(issue.get("body")) or find_command(issue.get("title")) or ""
            # Opened-with-label and labeled arrive together for one new issue: one trigger per sender.
            return IssueCommand(repo, int(issue["number"]), sender, f"issue:{_issue_key(payload)}:{sender}", text)
        if event == "issue_comment" and action == "created":
            comment = payload["comment"]
            if (comment.get("user") or {}).get("type") == "Bot":
                return None  # our own comments quote commands; never answer a bot
            text = find_command(comment.get("body"))
            if text is None:
                return None
            return IssueCommand(repo, int(payload["issue"]["number"]), sender, f"comment:{comment['id']}", text)
    except (KeyError, TypeError, ValueError):
        return None
    return None
