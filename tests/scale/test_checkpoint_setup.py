"""Workers starting together on a fresh database set up LangGraph's checkpoint tables without deadlocking."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.scale


def test_concurrent_first_use_of_the_checkpointer_does_not_deadlock(cluster):
    # `onboard bench scale` with 2 workers: one job failed with "deadlock detected". The migrations include
    # CREATE INDEX CONCURRENTLY, which waited for the other worker's session, itself blocked in
    # pg_advisory_lock behind the first one.
    from concurrent.futures import ThreadPoolExecutor

    from agent.scale import checkpoint

    def first_use(url: str) -> None:
        with checkpoint.postgres_saver(url) as saver:
            assert saver.get_tuple({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}) is None

    for _ in range(3):  # a race: a few fresh databases
        url = cluster.database()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: first_use(url), range(4)))
        checkpoint._ready.discard(url)
