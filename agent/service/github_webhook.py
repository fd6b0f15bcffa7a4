"""GitHub webhooks: signature check and turning an event into a command request.

The sender's write permission is checked later, in the background (it needs
the API, and the webhook must answer fast). That includes labelled issues:
issue templates can apply a label for anyone.
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


@dataclass(frozen=True)
class IssueCommand:
    repo: str  # owner/name the issue lives in
    issue: int
    sender: str
    text: str  # the `/onboard …` line, still unparsed


def issue_command(event: str, payload: dict, label: str) -> IssueCommand | None | str:
    """The command a delivery carries; None when it carries none; a string when it should be answered."""
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
            text = find_command(issue.get("body")) or find_command(issue.get("title"))
            if text is None:
                return f"labelled `{label}` but no `/onboard MODEL` line in the title or body"
            return IssueCommand(repo, int(issue["number"]), sender, text)
        if event == "issue_comment" and action == "created":
            if (payload["comment"].get("user") or {}).get("type") == "Bot":
                return None  # our own comments quote commands; never answer a bot
            text = find_command(payload["comment"].get("body"))
            if text is None:
                return None
            return IssueCommand(repo, int(payload["issue"]["number"]), sender, text)
    except (KeyError, TypeError, ValueError):
        return None
    return None
