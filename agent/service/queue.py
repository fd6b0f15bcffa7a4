"""Persistent job queue in SQLite: one row per job, unique by trigger key.

A trigger key names what asked for the job (a GitHub comment or issue, a chat
request, a nightly slot), so a retried request finds its job instead of
adding one. At most one job per subject (target + model) is active at a
time: jobs for the same model share a graph thread, and two workers on one
thread would race. A request whose sender is not yet authorised waits in
`authorizing`, outside that slot: it can neither take the slot nor be joined,
so a stranger's request never holds or swallows anyone else's. Jobs left
`running` by a dead process go back to the queue on start; the graph's
checkpointer makes the re-run resume, not restart.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel

Status = Literal["authorizing", "queued", "running", "awaiting_approval",
                 "done", "failed", "cancelled", "unauthorized", "joined"]
ACTIVE = ("queued", "running", "awaiting_approval")  # holds the subject's one slot
FINAL = ("done", "failed", "cancelled", "unauthorized", "joined")
Verdict = Literal["allowed", "refused", "unknown"]  # a permission check's answer; unknown is not yes

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
    # model, target, publish (auto|approval|dry_run), authorize: {repo, login, checked} | None
    request: dict
    reply: dict  # where progress goes: {"kind": "github", repo, issue} | {"kind": "callback", url} | {}
    status: Status
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
            # ON CONFLICT rather than INSERT OR IGNORE: the same statement runs on the Postgres ledger.
            cur = db.execute("INSERT INTO deliveries VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                             (delivery_id, time.time()))
            return cur.rowcount == 1

    def forget_delivery(self, delivery_id: str) -> None:
        """Undo `record_delivery` when handling failed, so GitHub's redelivery is not taken for a replay."""
        with self._tx() as db:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def enqueue(self, *, trigger_key: str, subject: str, source: str, request: dict,
                reply: dict, authorized: bool = True) -> tuple[Job, bool]:
        """(job, created): an existing job for the trigger wins, then the active job for the subject.

        An unauthorised request (`authorized=False`) gets its own job in `authorizing` and joins
        nothing until `admit` has its sender's permission.
        """
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE trigger_key = ?", (trigger_key,)).fetchone()
            if row is None and authorized:
                row = self._active(db, subject)
            if row is not None:
                return self._job(row), False
            now = time.time()
            jid = job_id_for(trigger_key)
            db.execute("INSERT INTO jobs (id, trigger_key, subject, source, request, reply, status, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (jid, trigger_key, subject, source, json.dumps(request), json.dumps(reply),
                        "queued" if authorized else "authorizing", now, now))
            return self._get(db, jid), True

    @staticmethod
    def _active(db: sqlite3.Connection, subject: str) -> sqlite3.Row | None:
        return db.execute(f"SELECT * FROM jobs WHERE subject = ? AND status IN {ACTIVE}", (subject,)).fetchone()

    def _get(self, db: sqlite3.Connection, job_id: str) -> Job:
        return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    # --- authorisation ---
    def pending(self) -> list[Job]:
        """Jobs whose sender's permission is not checked yet, oldest first."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE status = 'authorizing' ORDER BY created_at")
        return [self._job(r) for r in rows]

    def admit(self, job_id: str, verdict: Verdict, why: str = "") -> Job | None:
        """Settle an `authorizing` job: refused and unknown end it; allowed queues it or joins the active job.

        Only authorised jobs ever hold the subject's slot, so an allowed request joins only
        another authorised one. None when the job was not pending (settled or cancelled meanwhile).
        """
        with self._tx() as db:
            job = self._get(db, job_id)
            if job is None or job.status != "authorizing":
                return None
            now = time.time()
            if verdict == "unknown":  # no answer to give a sender we could not verify
                fields = {"status": "failed", "notified": 1, "message": why[:500]}
            elif verdict == "refused":
                fields = {"status": "unauthorized", "message": why[:500]}
            elif (other := self._active(db, job.subject)) is not None:
                fields = {"status": "joined", "message": f"already on it: job `{other['id']}` ({other['status']})"}
            else:
                auth = {**(job.request.get("authorize") or {}), "checked": True}
                fields = {"status": "queued", "request": json.dumps({**job.request, "authorize": auth})}
            cols = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE jobs SET {cols}, updated_at = ? WHERE id = ?", (*fields.values(), now, job_id))
            return self._get(db, job_id)

    # --- workers ---
    def recover(self) -> list[str]:
        """Requeue jobs a dead process left running (one service process per queue file).

        Delivery keys are kept: they name signed content, and a replay months later is still one.
        """
        with self._tx() as db:
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

    def find(self, key: str, belongs: Callable[[Job], bool]) -> Job | None:
        """Like `get`, among the jobs `belongs` accepts only (a thread id may be shared across origins)."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE id = ? OR thread_id = ? ORDER BY created_at DESC",
                                    (key, key)).fetchall()
        return next((job for job in map(self._job, rows) if belongs(job)), None)

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
            if row["status"] in ("authorizing", "queued", "awaiting_approval"):
                db.execute("UPDATE jobs SET status = 'cancelled', message = 'cancelled', updated_at = ? "
                           "WHERE id = ?", (now, row["id"]))
            elif row["status"] == "running":
                db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, row["id"]))
            else:
                raise ValueError(f"job {row['id']} already {row['status']}")
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())
