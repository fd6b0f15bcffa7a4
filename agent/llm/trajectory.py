"""The trajectory of one job's LLM work: a JSON file rewritten after every step.

It is both the audit record (`onboard trajectory THREAD`) and the resume
point: a killed run reloads the conversation from it, so finished tool calls
are never executed again. Everything passes through the redactor on the way
to disk.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from agent.llm.redact import Redactor

FILENAME = "trajectory.json"


def path_for(job_dir: Path) -> Path:
    return Path(job_dir) / FILENAME


class Trajectory:
    def __init__(self, path: Path, redactor: Redactor, data: dict | None = None):
        self.path = Path(path)
        self.redactor = redactor
        self.data = data or {"version": 1, "rounds": [], "messages": [], "usage": {}, "exit_status": None}

    @classmethod
    def load_or_new(cls, path: Path, redactor: Redactor, **header) -> "Trajectory":
        path = Path(path)
        if path.exists():
            return cls(path, redactor, json.loads(path.read_text()))
        t = cls(path, redactor)
        t.data.update(header)
        return t

    # -- rounds ------------------------------------------------------------------
    @property
    def rounds(self) -> list[dict]:
        return self.data["rounds"]

    @property
    def current(self) -> dict | None:
        return self.rounds[-1] if self.rounds else None

    def open_round(self) -> dict | None:
        """The round a killed run left unfinished, if any."""
        cur = self.current
        return cur if cur and cur.get("status") == "running" else None

    def start_round(self, kind: str, candidate: str) -> dict:
        rnd = {"round": len(self.rounds), "kind": kind, "candidate": candidate, "status": "running",
               "message": "", "started_at": time.time(), "steps": []}
        self.rounds.append(rnd)
        return rnd

    def end_round(self, status: str, message: str, summary: str | None, usage: dict) -> None:
        self.current.update(status=status, message=message, summary=summary, ended_at=time.time())
        self.data.update(exit_status=status, usage=usage)
        self.save()

    # -- steps -------------------------------------------------------------------
    def add_step(self, step: dict) -> dict:
        self.current["steps"].append(step)
        return step

    @property
    def messages(self) -> list[dict]:
        return self.data["messages"]

    def save(self, usage: dict | None = None) -> None:
        if usage is not None:
            self.data["usage"] = usage
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.redactor.data(self.data), indent=1, default=str)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".trajectory.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path)
