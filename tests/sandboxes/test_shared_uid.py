"""Concurrent local jobs run as the same uid: one job's processes must not use up another's allowance.

RLIMIT_NPROC counts every process of a uid, so a limit computed as "what the uid has now + the job's
pids" breaks as soon as a sibling job grows after that count (seen under `--jobs 2` with torch's
threads: `setpriv: failed to execute python: Resource temporarily unavailable`). The cgroup caps each
job alone; the rlimit is only the fallback where no cgroup can be made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from sandboxes import local
from sandboxes.base import Limits
from sandboxes.cgroup import Cgroup
from sandboxes.local import NOBODY, LocalSandbox

HOLD = "import threading, time\nfor _ in range(120): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\nprint('up', flush=True)\ntime.sleep(60)\n"


def _cgroup_caps_pids() -> bool:
    cg = Cgroup.create(pids=8, memory_mb=64, cpus=1.0)
    if cg is None:
        return False
    try:
        return cg.limits_pids
    finally:
        cg.remove()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to act as a second job's uid")
def test_a_sibling_job_of_the_same_uid_does_not_starve_the_next(monkeypatch):
    if not _cgroup_caps_pids():
        pytest.skip("no cgroup with a pids controller here: the per-uid rlimit is the only cap")
    box = LocalSandbox()
    # The sibling: 120 threads as the sandbox uid, started after this job counted the uid's processes
    # (the count is pinned to 0 to make the race deterministic).
    sibling = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                                sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    try:
        assert sibling.stdout.readline().strip() == "up"
        monkeypatch.setattr(local, "_user_processes", lambda uid: 0)
        r = box.run([box.python, "-c", "print('started')"], limits=Limits(timeout_s=60, pids=64))
        assert r.status == "ok" and r.stdout.strip() == "started", (r.status, r.stderr[-300:])
    finally:
        sibling.kill()
        sibling.wait()
