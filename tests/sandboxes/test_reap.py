"""Sandbox containers of a scale worker that died are reaped by age and ownership, and nothing else is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from sandboxes.base import Limits
from sandboxes.docker import (LABEL, REAP_GRACE_S, STARTED, TIMEOUT, WORKER, dead_workers_orphan, labels,
                              reap_dead_workers)
from sandboxes.images import DEFAULT_IMAGE
from tests import TESTS

IMAGE = os.environ.get("ONBOARD_SANDBOX_TEST_IMAGE", DEFAULT_IMAGE)
NOW = 1_000_000.0


def _tags(worker="w1@h/7-1", age=10.0, timeout=600.0) -> dict[str, str]:
    return labels(Limits(timeout_s=timeout), now=NOW - age, env={"ONBOARD_WORKER_ID": worker} if worker else {})


def test_labels_name_the_worker_the_start_and_the_hard_timeout():
    tags = _tags(age=0, timeout=1200)
    assert tags[LABEL] == "1" and tags[WORKER] == "w1@h/7-1" and tags[STARTED] == "1000000" and tags[TIMEOUT] == "1200"
    assert WORKER not in _tags(worker=None)  # outside scale mode: only the host:pid reaper's label


@pytest.mark.parametrize("age, alive, reaped", [
    (600 + REAP_GRACE_S + 1, False, True),    # past its hard timeout, worker gone
    (600 + REAP_GRACE_S + 1, True, False),    # its worker still beats: it removes its own
    (600 + REAP_GRACE_S - 1, False, False),   # young: a late heartbeat must not kill a running command
    (10, False, False),
])
def test_an_orphan_is_old_and_ownerless(age, alive, reaped):
    why = dead_workers_orphan(_tags(age=age), NOW, lambda w: alive and w == "w1@h/7-1")
    assert (why is not None) == reaped
    if reaped:
        assert "w1@h/7-1 is gone" in why


def test_containers_that_are_not_a_workers_sandbox_are_never_reaped():
    old = 10**6
    assert dead_workers_orphan(_tags(worker=None, age=old), NOW, lambda w: False) is None
    foreign = {k: v for k, v in _tags(age=old).items() if k != LABEL}  # someone else's label, not ours
    assert dead_workers_orphan(foreign, NOW, lambda w: False) is None
    garbled = {**_tags(age=old), STARTED: "yesterday"}
    assert dead_workers_orphan(garbled, NOW, lambda w: False) is None


SANDBOX_RUN = ("from sandboxes.docker import DockerSandbox; from sandboxes.base import Limits; "
               f"DockerSandbox({IMAGE!r}, reap=False).run(['sleep', '600'], limits=Limits(timeout_s=30))")


@pytest.mark.docker
def test_a_killed_workers_container_is_reaped_once_past_its_timeout_and_only_it():
    from sandboxes.factory import engine_status

    client, why = engine_status(IMAGE)
    if client is None:
        pytest.skip(f"docker backend not testable here: {why}")
    wid = f"dead@test/{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent), "ONBOARD_WORKER_ID": wid}
    worker = subprocess.Popen([sys.executable, "-c", SANDBOX_RUN], env=env, cwd=TESTS.parent,
                              stderr=subprocess.PIPE, start_new_session=True)
    bystander = client.api.create_container(IMAGE, ["sleep", "600"], labels={LABEL: "1", "onboarder.owner": "x:1"})
    try:
        deadline = time.monotonic() + 120
        while not (mine := client.api.containers(filters={"label": f"{WORKER}={wid}", "status": "running"})):
            assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()[-1500:]
            time.sleep(0.2)
        os.killpg(worker.pid, signal.SIGKILL)  # as a worker dies: no finally, no atexit
        worker.wait(30)
        cid = mine[0]["Id"]
        assert client.api.inspect_container(cid)["State"]["Running"]  # left behind on the engine
        later = time.time() + 30 + REAP_GRACE_S + 5
        assert reap_dead_workers(client, lambda w: False) == []  # young: kept
        assert reap_dead_workers(client, {wid}.__contains__, now=later) == []  # its worker alive: kept
        assert reap_dead_workers(client, lambda w: False, now=later) == [cid]
        assert not client.api.containers(all=True, filters={"id": cid})
        assert client.api.containers(all=True, filters={"id": bystander["Id"]})  # not a worker's: untouched
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        for c in client.api.containers(all=True, filters={"label": f"{WORKER}={wid}"}) + [bystander]:
            client.api.remove_container(c["Id"], force=True)
