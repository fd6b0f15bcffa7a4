"""Slack request signing: v0 HMAC-SHA256 over `v0:TIMESTAMP:BODY`, within a replay window."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, now: float,
           window_s: int = 300) -> str | None:
    """None when the request is Slack's and fresh; otherwise why not (for the log, not the caller)."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return "malformed timestamp"
    if abs(now - ts) > window_s:
        return f"timestamp outside the {window_s}s window (replay?)"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "signature mismatch"
    return None
