"""The nightly attempt store and the night's spend on Postgres: what every planner and worker reads.

A planner on one machine must see what a worker on another finished (the
"same inputs within DAYS" skip), and the night's PR and token budgets hold
across all workers. The per-type and per-target sweep locks are session
advisory locks, freed by Postgres when the holder's connection closes (a
killed process never leaves one held), like the flocks of the file backend.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agent.nightly.status import Row
from agent.nightly.store import KEEP_ATTEMPTS, Attempts, SweepBusy
from agent.scale.pg import advisory_lock, connect, ensure_schema, lock_key

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS nightly_attempts (
        id BIGSERIAL PRIMARY KEY, target TEXT NOT NULL, model_type TEXT NOT NULL, row JSONB NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS nightly_attempts_by_type ON nightly_attempts (target, model_type, id)",
    # One row per type a night's job may spend on: a PR slot (claimed before publishing) and its tokens.
    """CREATE TABLE IF NOT EXISTS nightly_spend (
        night TEXT NOT NULL, target TEXT NOT NULL, model_type TEXT NOT NULL, pr BOOLEAN NOT NULL DEFAULT FALSE,
        tokens BIGINT NOT NULL DEFAULT 0, job_id TEXT NOT NULL DEFAULT '', updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (night, target, model_type))""",
)
_ready: set[str] = set()  # URLs whose tables this process has created


def _connect(url: str):
    conn = connect(url)
    if url not in _ready:
        ensure_schema(conn, "nightly", SCHEMA)
        _ready.add(url)
    return conn


class PgAttemptStore(Attempts):
    def __init__(self, url: str, data_dir: Path, target: str):
        self.url, self.target = url, target
        self.root = data_dir / "nightly" / target
        self._conn = None

    def _db(self):
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def history(self, model_type: str) -> list[Row]:
        rows = self._db().execute("SELECT row FROM nightly_attempts WHERE target = %s AND model_type = %s "
                                  "ORDER BY id", (self.target, model_type)).fetchall()
        out = []
        for r in rows:
            try:
                out.append(Row.model_validate(r["row"]))
            except ValueError:
                continue  # a row an older version wrote differently is unknown history, never a crash
        return out

    def record(self, row: Row) -> None:
        db = self._db()
        with db.transaction():
            db.execute("INSERT INTO nightly_attempts (target, model_type, row, recorded_at) VALUES (%s, %s, %s, %s)",
                       (self.target, row.model_type, json.dumps(row.model_dump(mode="json")), time.time()))
            db.execute("DELETE FROM nightly_attempts WHERE target = %s AND model_type = %s AND id NOT IN "
                       "(SELECT id FROM nightly_attempts WHERE target = %s AND model_type = %s "
                       "ORDER BY id DESC LIMIT %s)",
                       (self.target, row.model_type, self.target, row.model_type, KEEP_ATTEMPTS))

    @contextmanager
    def type_lock(self, model_type: str) -> Iterator[bool]:
        with advisory_lock(self.url, f"nightly:{self.target}:type:{model_type}") as got:
            yield got

    @contextmanager
    def sweep_lock(self) -> Iterator[None]:
        with advisory_lock(self.url, f"nightly:{self.target}:sweep") as got:
            if not got:
                raise SweepBusy("another nightly sweep or enqueue of this target is running "
                                "(its Postgres advisory lock is held)")
            yield


class NightSpend:
    """The night's PRs and tokens for one target, across every worker."""

    def __init__(self, url: str, night: str, target: str):
        self.url, self.night, self.target = url, night, target
        self._conn = _connect(url)

    def close(self) -> None:
        self._conn.close()

    def totals(self) -> tuple[int, int]:
        """(PRs claimed, tokens spent) tonight."""
        row = self._conn.execute("SELECT COUNT(*) FILTER (WHERE pr) AS prs, COALESCE(SUM(tokens), 0) AS tokens "
                                 "FROM nightly_spend WHERE night = %s AND target = %s",
                                 (self.night, self.target)).fetchone()
        return int(row["prs"]), int(row["tokens"])

    def has_pr(self, model_type: str) -> bool:
        row = self._conn.execute("SELECT pr FROM nightly_spend WHERE night = %s AND target = %s AND "
                                 "model_type = %s", (self.night, self.target, model_type)).fetchone()
        return bool(row and row["pr"])

    def claim_pr(self, model_type: str, max_prs: int, job_id: str) -> bool:
        """Take one of tonight's PR slots for `model_type`; True again for a type that has one (a re-run
        after a kill publishes the same PR), False when the night's slots are all taken."""
        with self._conn.transaction():
            # Count-then-claim is one step for every worker of this night and target.
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"nightly-spend:{self.night}:"
                                                                             f"{self.target}"),))
            if self.has_pr(model_type):
                return True
            if self.totals()[0] >= max_prs:
                return False
            self._conn.execute(
                "INSERT INTO nightly_spend (night, target, model_type, pr, job_id, updated_at) "
                "VALUES (%s, %s, %s, TRUE, %s, %s) ON CONFLICT (night, target, model_type) "
                "DO UPDATE SET pr = TRUE, job_id = EXCLUDED.job_id, updated_at = EXCLUDED.updated_at",
                (self.night, self.target, model_type, job_id, time.time()))
            return True

    def release_pr(self, model_type: str) -> None:
        """The publish that claimed a slot failed: the slot goes back to the night."""
        self._conn.execute("UPDATE nightly_spend SET pr = FALSE, updated_at = %s WHERE night = %s AND "
                           "target = %s AND model_type = %s", (time.time(), self.night, self.target, model_type))

    def set_tokens(self, model_type: str, tokens: int, job_id: str) -> None:
        """A type's tokens tonight (set, not added: a redelivered job reports the same run again)."""
        self._conn.execute(
            "INSERT INTO nightly_spend (night, target, model_type, tokens, job_id, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (night, target, model_type) "
            "DO UPDATE SET tokens = EXCLUDED.tokens, updated_at = EXCLUDED.updated_at",
            (self.night, self.target, model_type, tokens, job_id, time.time()))
