"""LangGraph's Postgres checkpointer for every thread, when ONBOARD_CHECKPOINT_URL is set."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from agent.scale.pg import connect, lock_key

_ready: set[str] = set()  # URLs whose tables this process has set up


@contextmanager
def postgres_saver(url: str) -> Iterator[object]:
    from langgraph.checkpoint.postgres import PostgresSaver

    conn = connect(url)
    try:
        saver = PostgresSaver(conn)
        if url not in _ready:
            # setup() runs migrations: two workers starting together must not run them at once.
            key = lock_key("onboard:checkpoint-setup")
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                saver.setup()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            _ready.add(url)
        yield saver
    finally:
        conn.close()
