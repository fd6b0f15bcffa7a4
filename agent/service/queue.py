"""Persistent job queue in SQLite: one row per job, unique by trigger key.

A trigger key names what asked for the job (a GitHub delivery, a chat
request, a nightly slot), so a retried delivery finds its job instead of
adding one. At most one job per subject (target + model) is active at a
time: jobs for the same model share a graph thread, and two workers on one
thread would race. Jobs left `running` by a dead process go back to the queue
on start; the graph's checkpointer makes the re-run resume, not restart.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

ACTIVE = ("queued", "running", "awaiting_approval")
FINAL = ("done", "failed", "cancelled", "unauthorized")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    trigger_key TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    request TEXT NOT NULL,
    reply TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    thread_id TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    pr_url TEXT NOT NULL DEFAULT '',
    approval TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    notified INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_subject
    ON jobs(subject) WHERE status IN ('queued', 'running', 'awaiting_approval');
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, received_at REAL NOT NULL);
"""


class Job(BaseModel):
    id: str
    trigger_key: str
    subject: str
    source: str  # github | chat | api | nightly
    request: dict  # model, target, publish (auto|approval|dry_run), authorize: {repo, login} | None
    reply: dict  # where progress goes: {"kind": "github", repo, issue} | {"kind": "callback", url} | {}
    status: str
    stage: str = ""
    thread_id: str = ""
    outcome: str = ""
    message: str = ""
    pr_url: str = ""
    approval: str = ""  # JSON of the reviewer's decision, consumed by the next run
    cancel_requested: bool = False
    notified: bool = False  # the final message went out
    runs: int = 0
    worker: str = ""
    created_at: float
    updated_at: float

    def public(self) -> dict:
        return self.model_dump(exclude={"reply", "worker", "approval"})


def job_id_for(trigger_key: str) -> str:
    return "j" + hashlib.sha256(trigger_key.encode()).hexdigest()[:12]


class JobQueue:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)  # executescript manages its own transaction

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self):
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        if row is None:
            return None
        data = dict(row)
        data["request"], data["reply"] = json.loads(data["request"]), json.loads(data["reply"])
        return Job.model_validate(data)

    # --- intake ---
    def record_delivery(self, delivery_id: str) -> bool:
        """True the first time a delivery id is seen."""
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO deliveries VALUES (?, ?)", (delivery_id, time.time()))
            return cur.rowcount == 1

    def forget_delivery(self, delivery_id: str) -> None:
        """Undo `record_delivery` when handling failed, so GitHub's redelivery is not taken for a replay."""
        with self._tx() as db:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def enqueue(self, *, trigger_key: str, subject: str, source: str, request: dict,
                reply: dict) -> tuple[Job, bool]:
        """(job, created): an existing job for the trigger, or the active job for the subject, wins."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE trigger_key = ?", (trigger_key,)).fetchone()
            if row is None:
                row = db.execute(f"SELECT * FROM jobs WHERE subject = ? AND status IN {ACTIVE}",
                                 (subject,)).fetchone()
            if row is not None:
                return self._job(row), False
            now = time.time()
            jid = job_id_for(trigger_key)
            db.execute("INSERT INTO jobs (id, trigger_key, subject, source, request, reply, status, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                       (jid, trigger_key, subject, source, json.dumps(request), json.dumps(reply), now, now))
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (jid,)).fetchone()), True

    # --- workers ---
    def recover(self, keep_deliveries_s: float = 30 * 86400) -> list[str]:
        """Requeue jobs a dead process left running (one service process per queue file).

        Also forgets delivery ids older than GitHub would ever redeliver, so the table stays small.
        """
        with self._tx() as db:
            db.execute("DELETE FROM deliveries WHERE received_at < ?", (time.time() - keep_deliveries_s,))
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status = 'running'")]
            db.execute("UPDATE jobs SET status = 'queued', worker = '', updated_at = ? WHERE status = 'running'",
                       (time.time(),))
        return ids

    def claim(self, worker: str) -> Job | None:
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', worker = ?, runs = runs + 1, updated_at = ? "
                       "WHERE id = ?", (worker, time.time(), row["id"]))
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def update(self, job_id: str, **fields) -> Job:
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def unnotified(self) -> list[Job]:
        """Finished jobs whose final message may not have gone out (the process died in between)."""
        rows = self._conn().execute(f"SELECT * FROM jobs WHERE notified = 0 AND status IN {FINAL}").fetchall()
        return [self._job(r) for r in rows]

    # --- people ---
    def get(self, key: str) -> Job | None:
        """By job id or by graph thread id (the newest job of that thread)."""
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ? OR thread_id = ? ORDER BY created_at DESC "
                                   "LIMIT 1", (key, key)).fetchone()
        return self._job(row)

    def list(self, limit: int = 100, status: str | None = None) -> list[Job]:
        if status:
            rows = self._conn().execute("SELECT * FROM jobs WHERE status = ? ORDER BY created_at DESC LIMIT ?",
                                        (status, limit))
        else:
            rows = self._conn().execute("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [self._job(r) for r in rows]

    def count(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    def approve(self, key: str, decision: dict) -> Job:
        """Answer a job waiting for approval; it goes back to the queue to resume."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ? OR thread_id = ? ORDER BY created_at DESC LIMIT 1",
                             (key, key)).fetchone()
            if row is None:
                raise KeyError(key)
            if row["status"] != "awaiting_approval":
                raise ValueError(f"job {row['id']} is {row['status']}, not awaiting approval")
            db.execute("UPDATE jobs SET status = 'queued', approval = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(decision), time.time(), row["id"]))
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def cancel(self, key: str) -> Job:
        """Queued and waiting jobs stop now; a running one stops at its next stage boundary."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ? OR thread_id = ? ORDER BY created_at DESC LIMIT 1",
                             (key, key)).fetchone()
            if row is None:
                raise KeyError(key)
            now = time.time()
            if row["status"] in ("queued", "awaiting_approval"):
                db.execute("UPDATE jobs SET status = 'cancelled', message = 'cancelled', updated_at = ? "
                           "WHERE id = ?", (now, row["id"]))
            elif row["status"] == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, row["id"]))
            else:
                raise ValueError(f"job {row['id']} already {row['status']}")
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())
