"""Worker heartbeats in Postgres, and the reaper of sandbox containers whose worker died.

Each `onboard worker` start gets an id of its own (name, pid and start time,
so a restarted worker with the same name is another worker) and writes it
with Postgres' clock every BEAT_S seconds from a thread of the Celery main
process. A worker is alive while its row is fresher than STALE_S. A row read
is chosen over `celery inspect`: it needs no broker round trip, cannot time
out on a busy worker, and a dead worker simply stops writing.

At start and every REAP_S seconds the same thread removes, from this
worker's Docker engine, onboarder sandbox containers that are older than
their hard timeout and whose worker is not alive (sandboxes.docker).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

BEAT_S = 15.0
STALE_S = 4 * BEAT_S  # three missed beats and a slow one
REAP_S = 300.0
FORGET_S = 7 * 86400  # rows of workers gone this long are deleted

_SCHEMA = ("CREATE TABLE IF NOT EXISTS onboard_workers (id TEXT PRIMARY KEY, "
           "started_at DOUBLE PRECISION NOT NULL, beat_at DOUBLE PRECISION NOT NULL)")
_NOW = "extract(epoch from clock_timestamp())"
_ready: set[str] = set()  # URLs whose table this process has made: not again on every beat


def _table(conn, url: str) -> None:
    from agent.scale.pg import ensure_schema

    if url not in _ready:
        ensure_schema(conn, "workers", [_SCHEMA])
        _ready.add(url)


def worker_id(name: str) -> str:
    return f"{name}/{os.getpid()}-{int(time.time())}"


def beat(url: str, wid: str) -> None:
    from agent.scale.pg import connect

    # A connection per beat: the Celery parent forks job processes, which must not inherit a live socket.
    with connect(url) as conn:
        _table(conn, url)
        conn.execute(f"INSERT INTO onboard_workers (id, started_at, beat_at) VALUES (%s, {_NOW}, {_NOW}) "
                     f"ON CONFLICT (id) DO UPDATE SET beat_at = {_NOW}", (wid,))


def alive_workers(url: str) -> set[str]:
    from agent.scale.pg import connect

    with connect(url) as conn:
        _table(conn, url)
        conn.execute(f"DELETE FROM onboard_workers WHERE beat_at < {_NOW} - %s", (FORGET_S,))
        rows = conn.execute(f"SELECT id FROM onboard_workers WHERE beat_at >= {_NOW} - %s", (STALE_S,)).fetchall()
    return {r["id"] for r in rows}


def reap(url: str, client=None) -> list[str]:
    """One pass over this worker's engine (none answering: nothing to reap); the removed containers' ids."""
    from sandboxes.docker import reap_dead_workers

    if client is None:
        from sandboxes.factory import engine_status

        client, why = engine_status()
        if client is None:
            log.debug("no sandbox containers to reap: %s", why)
            return []
    alive = alive_workers(url)
    removed = reap_dead_workers(client, alive.__contains__)
    if removed:
        log.warning("reaped %d sandbox container(s) of dead workers: %s", len(removed),
                    ", ".join(c[:12] for c in removed))
    return removed


def start(url: str, name: str) -> str:
    """Beat and reap in a daemon thread of this process; the worker id its sandboxes are labelled with."""
    from sandboxes.docker import WORKER_ENV

    wid = worker_id(name or socket.gethostname())
    os.environ[WORKER_ENV] = wid  # inherited by the job processes Celery forks, which create the containers
    beat(url, wid)  # alive before the first job, and a bad URL fails the start in one line
    threading.Thread(target=_loop, args=(url, wid), name="onboard-heartbeat", daemon=True).start()
    return wid


def _loop(url: str, wid: str) -> None:
    next_reap = 0.0
    while True:
        try:
            beat(url, wid)
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + REAP_S
                reap(url)
        except Exception as exc:  # Postgres or the engine away for a moment: the next beat tries again
            log.warning("heartbeat/reap failed: %s", exc)
        time.sleep(BEAT_S)
