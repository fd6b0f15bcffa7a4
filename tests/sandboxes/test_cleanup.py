"""A SIGKILLed local run leaves nothing behind on the host (its HOME and /tmp live in the sandbox)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests import TESTS

ROOT = TESTS.parent


def _python(code: str, tmp: Path, **kw) -> subprocess.Popen:
    # TMPDIR points the sandbox (and tempfile) at this test's directory: the real /tmp is not touched.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _left_behind(tmp: Path) -> list[Path]:
    return sorted(tmp.iterdir())


RUN = ("from sandboxes.local import LocalSandbox; from sandboxes.base import Limits; "
       "r = LocalSandbox().run({cmd!r}, limits=Limits(timeout_s=120)); print(r.status)")


def test_a_killed_run_leaves_nothing_on_the_host(tmp_path):
    """The job's HOME and /tmp are a tmpfs inside the sandbox: a SIGKILLed run has nothing to clean up."""
    victim = _python(RUN.format(cmd=["sh", "-c", "touch /tmp/mark; echo started; sleep 60"]), tmp_path)
    time.sleep(3)  # the sandbox is up and the job has written its /tmp
    assert victim.poll() is None, victim.communicate()[1][-1500:]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert _left_behind(tmp_path) == []  # no onboard-sbx-* (or any) directory under TMPDIR

    nxt = _python(RUN.format(cmd=["true"]), tmp_path)
    out, err = nxt.communicate(timeout=120)
    assert nxt.returncode == 0 and out.strip() == "ok", err[-1500:]
    assert _left_behind(tmp_path) == []
