"""LangGraph's Postgres checkpointer for every thread, when ONBOARD_CHECKPOINT_URL is set."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from agent.scale.pg import connect, lock_key

_ready: set[str] = set()  # URLs whose tables this process has set up
POLL_S = 0.2


def _migrated(conn, saver) -> bool:
    row = conn.execute("SELECT to_regclass('checkpoint_migrations') IS NOT NULL AS ok").fetchone()
    if not row["ok"]:
        return False
    last = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()["v"]
    return last is not None and last >= len(saver.MIGRATIONS) - 1


def _setup_once(conn, saver, timeout_s: float = 300.0) -> None:
    """Migrations one process at a time. The lock is polled, never waited for inside a statement: the
    migrations include CREATE INDEX CONCURRENTLY, which waits for every open transaction, and a session
    blocked in pg_advisory_lock is one, so two workers starting together deadlocked (bench scale)."""
    if _migrated(conn, saver):
        return
    key = lock_key("onboard:checkpoint-setup")
    deadline = time.monotonic() + timeout_s
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]:
        if time.monotonic() > deadline:
            raise TimeoutError("another process has held the checkpoint migrations lock for "
                               f"{timeout_s:.0f} s")
        time.sleep(POLL_S)
    try:
        if not _migrated(conn, saver):
            saver.setup()
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextmanager
def postgres_saver(url: str) -> Iterator[object]:
    from langgraph.checkpoint.postgres import PostgresSaver

    conn = connect(url)
    try:
        saver = PostgresSaver(conn)
        if url not in _ready:
            _setup_once(conn, saver)
            _ready.add(url)
        yield saver
    finally:
        conn.close()
