"""The job ledger on Postgres: JobQueue's schema and statements, shared by every service and worker.

The SQL of agent.service.queue runs unchanged through a thin adapter (`?`
placeholders, rows by name), so both backends keep one set of semantics:
unique trigger keys, one active job per subject (the same partial unique
index), the runs counter. SQLite's BEGIN IMMEDIATE serialises writers; here a
transaction-scoped advisory lock does, so a read-then-insert (enqueue, admit)
cannot race another process.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from agent.scale.pg import connect, lock_key
from agent.service.queue import _SCHEMA, Job, JobQueue

# REAL is 4 bytes in Postgres: epoch seconds would lose minutes, and with them the order of jobs.
PG_SCHEMA = _SCHEMA.replace(" REAL ", " DOUBLE PRECISION ")
_WRITERS = lock_key("onboard:ledger")


class _Db:
    """The slice of sqlite3.Connection that JobQueue uses, over one psycopg connection."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params: tuple = ()):
        return self.conn.execute(sql.replace("?", "%s"), params)

    def executescript(self, sql: str) -> None:
        for statement in filter(str.strip, sql.split(";")):  # a prepared statement holds one command
            self.conn.execute(statement)


class PgJobQueue(JobQueue):
    def __init__(self, url: str):
        self.url = url
        self.path = None
        self._local = threading.local()
        with self._tx() as db:
            db.executescript(PG_SCHEMA)

    def _conn(self) -> _Db:
        db = getattr(self._local, "db", None)
        if db is None or db.conn.closed:
            db = self._local.db = _Db(connect(self.url))
        return db

    @contextmanager
    def _tx(self):
        db = self._conn()
        with db.conn.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITERS,))
            yield db

    # --- scale mode only ---
    def start(self, job_id: str, worker: str) -> Job | None:
        """Take a job for one run (queued, or left running by a dead worker); None when it is not runnable
        (unknown, final, waiting for a person): a duplicate delivery of such a job is a no-op.

        The caller holds the job's advisory lock, so a `running` row here belongs to no live worker.
        """
        with self._tx() as db:
            job = self._get(db, job_id)
            if job is None or job.status not in ("queued", "running"):
                return None
            db.execute("UPDATE jobs SET status = 'running', worker = ?, runs = runs + 1, updated_at = "
                       "extract(epoch from clock_timestamp()) WHERE id = ?", (worker, job_id))
            return self._get(db, job_id)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
