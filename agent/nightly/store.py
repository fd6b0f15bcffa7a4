"""What earlier sweeps attempted, with which inputs, and who is running what right now.

Layout under `<data_dir>/nightly/<target>/` (the file backend, the default):
  attempts/<model_type>.json   newest-last list of rows (bounded), written by the job itself,
                               so a sweep killed after a job finished still knows it finished;
  locks/<model_type>.lock      held by the process working on a type (flock: dies with it);
  sweep.lock                   one sweep per target at a time.
With ONBOARD_CHECKPOINT_URL set (scale mode), `open_store` gives the Postgres backend
(agent.scale.attempts): the same rows and locks, shared by every machine. Runs,
reports and the planning workspace stay under `root` on the machine that plans.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel

from agent.nightly.status import ATTEMPTED, Row

KEEP_ATTEMPTS = 20
ROOT = Path(__file__).resolve().parents[2]
# The code that decides a type's outcome; a change here is a new builder. The
# faces (CLI, service, nightly reporting) are left out: they do not change outcomes.
# Every file counts (prompts are .j2, environments are Dockerfiles and locks), not only *.py.
BUILDER_SOURCES = ("agent/graph", "agent/llm", "tools", "sandboxes/targets", "sandboxes/site", "prompts")


class Inputs(BaseModel):
    transformers: str
    target_rev: str
    builder: str


def builder_version(root: Path = ROOT) -> str:
    try:
        version = metadata.version("onboarder")
    except metadata.PackageNotFoundError:
        version = "0"
    h = hashlib.sha256()
    for rel in BUILDER_SOURCES:
        base = root / rel
        files = sorted(f for f in base.rglob("*") if "__pycache__" not in f.parts) if base.is_dir() else [base]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    return f"{version}+{h.hexdigest()[:12]}"


class SweepBusy(RuntimeError):
    """Another sweep holds this target's lock."""


class Attempts:
    """What a backend provides: history/record of rows and the two locks; `recent` and `is_locked` follow."""

    root: Path  # this machine's dir for the target's runs and reports

    def history(self, model_type: str) -> list[Row]:
        raise NotImplementedError

    def record(self, row: Row) -> None:
        raise NotImplementedError

    def type_lock(self, model_type: str):
        """A context manager yielding False when another process is working on `model_type`."""
        raise NotImplementedError

    def sweep_lock(self):
        """A context manager; SweepBusy when another sweep of this target holds it."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the backend holds open (a database connection); nothing for files."""

    def recent(self, model_type: str, inputs: Inputs, since_days: float, now: float | None = None) -> Row | None:
        """The newest attempt with the same inputs inside the window, if any."""
        now = time.time() if now is None else now
        horizon = now - since_days * 86400
        for row in reversed(self.history(model_type)):
            if (row.status in ATTEMPTED and row.inputs == inputs.model_dump()
                    and (row.finished_at or 0) >= horizon):
                return row
        return None

    def is_locked(self, model_type: str) -> bool:
        with self.type_lock(model_type) as mine:
            return not mine


def open_store(data_dir: Path, target: str) -> Attempts:
    """The file store, or the Postgres one when ONBOARD_CHECKPOINT_URL is set (imported only then)."""
    from agent.scale.settings import checkpoint_url

    if (url := checkpoint_url()) is not None:
        from agent.scale.attempts import PgAttemptStore

        return PgAttemptStore(url, data_dir, target)
    return AttemptStore(data_dir, target)


class AttemptStore(Attempts):
    def __init__(self, data_dir: Path, target: str):
        self.root = data_dir / "nightly" / target

    def _path(self, model_type: str) -> Path:
        return self.root / "attempts" / f"{model_type}.json"

    def history(self, model_type: str) -> list[Row]:
        path = self._path(model_type)
        if not path.exists():
            return []
        try:
            return [Row.model_validate(r) for r in json.loads(path.read_text())]
        except (ValueError, OSError):
            return []  # a torn file is an unknown history, never a crash of the sweep

    def record(self, row: Row) -> None:
        rows = [*self.history(row.model_type), row][-KEEP_ATTEMPTS:]
        path = self._path(row.model_type)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([r.model_dump(mode="json") for r in rows], indent=1))
        tmp.replace(path)

    @contextmanager
    def type_lock(self, model_type: str) -> Iterator[bool]:
        """Yields False when another process is working on `model_type` (a straggler of a killed sweep)."""
        path = self.root / "locks" / f"{model_type}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def sweep_lock(self) -> Iterator[None]:
        path = self.root / "sweep.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SweepBusy(f"another nightly sweep of this target is running (lock {path})") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
