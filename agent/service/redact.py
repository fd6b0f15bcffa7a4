"""Keep secrets out of logs and every text the service sends or stores."""

from __future__ import annotations

import logging


class Redactor:
    def __init__(self, secrets: list[str]):
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text


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
            clean = r(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def uninstall(redactor: Redactor) -> None:
    if redactor in _active:
        _active.remove(redactor)
