"""Worker heartbeats in the real Postgres decide which sandbox containers the reaper may remove."""

from __future__ import annotations

import pytest

from sandboxes.base import Limits
from sandboxes.docker import REAP_GRACE_S, WORKER_ENV, labels

pytestmark = pytest.mark.scale


def _engine(held: dict[str, dict]):
    """The slice of a docker client the reaper uses, holding containers with real labels."""
    from types import SimpleNamespace

    api = SimpleNamespace(containers=lambda all=False, filters=None: [{"Id": k, "Labels": v} for k, v in held.items()],
                          remove_container=lambda cid, force=False: held.pop(cid))
    return SimpleNamespace(api=api)


def test_a_worker_that_stops_beating_has_its_old_containers_reaped(cluster):
    import time

    from agent.scale import heartbeat
    from agent.scale.pg import connect

    url = cluster.database()
    heartbeat.beat(url, "live@h/1-1")
    heartbeat.beat(url, "dead@h/2-1")
    with connect(url) as conn:  # dead stopped beating a while ago
        conn.execute("UPDATE onboard_workers SET beat_at = beat_at - %s WHERE id = %s",
                     (heartbeat.STALE_S + 1, "dead@h/2-1"))
    assert heartbeat.alive_workers(url) == {"live@h/1-1"}
    old = time.time() - 600 - REAP_GRACE_S - 5

    def tags(worker: str, started: float) -> dict:
        return labels(Limits(timeout_s=600), now=started, env={WORKER_ENV: worker})

    held = {"a": tags("dead@h/2-1", old), "b": tags("live@h/1-1", old), "c": tags("dead@h/2-1", time.time())}
    assert heartbeat.reap(url, _engine(held)) == ["a"]
    assert set(held) == {"b", "c"}


def test_start_beats_at_once_and_labels_the_job_processes(cluster, monkeypatch):
    from agent.scale import heartbeat

    url = cluster.database()
    monkeypatch.setattr(heartbeat, "_loop", lambda url, wid: None)  # no thread left beating after the test
    monkeypatch.delenv(WORKER_ENV, raising=False)
    wid = heartbeat.start(url, "w9@test")
    import os

    assert os.environ[WORKER_ENV] == wid and wid.startswith("w9@test/")
    assert wid in heartbeat.alive_workers(url)
    assert labels(Limits())["onboarder.worker"] == wid


@pytest.mark.docker
def test_the_reaper_removes_a_dead_workers_container_from_the_real_engine(cluster):
    """Postgres' heartbeats and a real engine together: only the dead worker's old container goes."""
    import os
    import time
    import uuid

    from agent.scale import heartbeat
    from sandboxes.factory import engine_status
    from sandboxes.images import DEFAULT_IMAGE

    image = os.environ.get("ONBOARD_SANDBOX_TEST_IMAGE", DEFAULT_IMAGE)
    client, why = engine_status(image)
    if client is None:
        pytest.skip(f"docker backend not testable here: {why}")
    url = cluster.database()
    run = uuid.uuid4().hex[:8]
    live, dead = f"live@{run}/1-1", f"dead@{run}/2-1"  # dead never beat: a worker gone before this pass
    heartbeat.beat(url, live)
    old = time.time() - 600 - REAP_GRACE_S - 5
    made = {w: client.api.create_container(image, ["sleep", "600"], labels=labels(Limits(timeout_s=600), now=old,
                                                                                  env={WORKER_ENV: w}))["Id"]
            for w in (live, dead)}
    try:
        for cid in made.values():
            client.api.start(cid)
        removed = heartbeat.reap(url, client)
        assert made[dead] in removed and made[live] not in removed
        assert not client.api.containers(all=True, filters={"id": made[dead]})
        assert client.api.containers(filters={"id": made[live]})  # still running
    finally:
        for cid in made.values():
            try:
                client.api.remove_container(cid, force=True)
            except Exception:
                pass


def test_workers_starting_together_each_beat_on_a_fresh_database(cluster):
    # Two `onboard worker`s started at once both created the table; one died on Postgres' catalog
    # ("duplicate key value violates unique constraint pg_type_typname_nsp_index") in `onboard bench scale`.
    from concurrent.futures import ThreadPoolExecutor

    from agent.scale import heartbeat

    for attempt in range(5):  # the collision is a race: several fresh databases make it near certain
        url = cluster.database()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: heartbeat.beat(url, f"w{i}@h/{i}-{attempt}"), range(8)))
        assert len(heartbeat.alive_workers(url)) == 8
