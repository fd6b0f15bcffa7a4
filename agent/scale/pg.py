"""Postgres connections and advisory locks (psycopg 3, imported only in scale mode)."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg.rows import dict_row

# A lost host's socket is noticed by TCP keepalive, which frees its advisory locks.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def connect(url: str) -> psycopg.Connection:
    # autocommit + prepare_threshold=0 + dict_row: what PostgresSaver needs, and fine for the ledger.
    return psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row, **KEEPALIVE)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (hashtext is 32-bit and collides sooner)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(url: str, name: str) -> Iterator[bool]:
    """Hold a session advisory lock while inside; yields False (without waiting) when another session has it.

    Postgres frees the lock when the holder's connection closes, so a killed worker never leaves it held.
    """
    conn = connect(url)
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (lock_key(name),)).fetchone()["ok"]
        yield bool(got)
    finally:
        conn.close()  # closing ends the session, which releases the lock


def ensure_schema(conn: psycopg.Connection, name: str, statements: tuple[str, ...] | list[str]) -> None:
    """Run CREATE ... IF NOT EXISTS statements one process at a time: two at once can still collide on
    Postgres' catalog (`pg_type_typname_nsp_index`), as two workers starting together did."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"onboard:schema:{name}"),))
        for statement in statements:
            conn.execute(statement)
