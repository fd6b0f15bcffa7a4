"""Cgroups left by a host process that died before removing them are reaped; a live job's never is."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from sandboxes import cgroup

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (cgroup.ROOT / "pids" / "cgroup.procs").exists(),
                                reason="needs root and the cgroup v1 pids controller")


def test_an_empty_old_cgroup_goes_and_a_busy_one_stays():
    own = cgroup._own_paths()
    parent = cgroup.ROOT / "pids" / own["pids"].lstrip("/")
    empty, busy = (parent / f"onboarder-test{uuid.uuid4().hex[:8]}" for _ in range(2))
    empty.mkdir()
    busy.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        # young: nothing is touched (a job's cgroup is empty for a moment before its process joins)
        cgroup.reap_stale({"pids": own["pids"]})
        assert empty.exists() and busy.exists()
        # as seen ten minutes later
        cgroup.reap_stale({"pids": own["pids"]}, now=time.time() + cgroup.STALE_S + 1)
        assert not empty.exists(), "an empty, old job cgroup is a leftover"
        assert busy.exists(), "a cgroup with a live process is a running job"
    finally:
        sleeper.kill()
        sleeper.wait()
        cgroup.Cgroup({"pids": empty, "pids2": busy}, False).remove()


def test_a_job_cgroup_carries_its_cpu_weight():
    cg = cgroup.Cgroup.create(pids=64, memory_mb=256, cpus=1.0, cpu_weight=4.0)
    if cg is None or "cpu" not in cg.dirs:
        pytest.skip("no cpu controller to weight here")
    try:
        assert (cg.dirs["cpu"] / "cpu.shares").read_text().strip() == "4096"
    finally:
        cg.remove()
    even = cgroup.Cgroup.create(pids=64, memory_mb=256, cpus=1.0)
    try:
        assert (even.dirs["cpu"] / "cpu.shares").read_text().strip() == "1024"
    finally:
        even.remove()
