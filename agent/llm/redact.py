"""Keep secrets out of prompts, trajectories and logs.

Secrets are collected by value (the LLM key, and every environment variable
whose name says it holds a credential), so a secret is masked wherever it
turns up: in a tool observation, a verification log the model provoked, or a
message the model wrote.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH",
                         re.IGNORECASE)
MIN_LEN = 6  # shorter values ("1", "true") would mask ordinary text
MASK = "***"


class Redactor:
    def __init__(self, extra: list[str] | None = None, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        # Numbers are limits (ONBOARD_LLM_MAX_TOKENS=400000), not credentials.
        values = {v for k, v in env.items()
                  if SECRET_NAME.search(k) and v and len(v) >= MIN_LEN and not v.replace(".", "").isdigit()}
        values |= {v for v in (extra or []) if v and len(v) >= MIN_LEN}
        # Longest first, so a secret containing another is masked whole.
        self._values = sorted(values, key=len, reverse=True)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, MASK)
        return s

    __call__ = text

    def data(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.data(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.data(v) for v in obj]
        return obj


_active: list[Redactor] = []
_installed = False


def install(redactor: Redactor) -> None:
    """Redact every log record at creation, whichever logger or handler (uvicorn's, pytest's) sees it.

    Logger- and handler-level filters miss records from child loggers or handlers added later;
    the record factory sees them all.
    """
    global _installed
    _active.append(redactor)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if not _active:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return record
        clean = message
        for r in _active:
            clean = r.text(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def uninstall(redactor: Redactor) -> None:
    if redactor in _active:
        _active.remove(redactor)
