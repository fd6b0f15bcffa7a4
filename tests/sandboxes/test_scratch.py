"""A SIGKILLed local run leaves its scratch home behind; the next run removes it, and never a live one's."""

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


def _homes(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith("onboard-sbx-"))


def _age(paths: list[Path], seconds: float = 3600) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then), follow_symlinks=False)


def _wait_for_home(tmp: Path, proc: subprocess.Popen) -> list[Path]:
    deadline = time.monotonic() + 60
    while not _homes(tmp):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the sandboxed run never started: {proc.communicate()[1][-1500:]}")
        time.sleep(0.1)
    return _homes(tmp)


RUN = ("from sandboxes.local import LocalSandbox; from sandboxes.base import Limits; "
       "r = LocalSandbox().run({cmd!r}, limits=Limits(timeout_s=120)); print(r.status)")


def test_a_killed_runs_home_is_removed_by_the_next_run(tmp_path):
    victim = _python(RUN.format(cmd=["sleep", "60"]), tmp_path)
    orphans = _wait_for_home(tmp_path, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert all(p.exists() for p in orphans)  # SIGKILL: no finally ran
    _age(orphans)

    nxt = _python(RUN.format(cmd=["true"]), tmp_path)
    out, err = nxt.communicate(timeout=120)
    assert nxt.returncode == 0 and out.strip() == "ok", err[-1500:]
    assert not any(p.exists() for p in orphans), "the orphaned home survived the next run"
    assert _homes(tmp_path) == []  # and the next run's own home went with it


def test_a_live_runs_home_is_left_alone_however_old(tmp_path):
    live = _python(RUN.format(cmd=["sleep", "60"]), tmp_path)
    try:
        homes = _wait_for_home(tmp_path, live)
        _age(homes)
        from sandboxes import scratch

        assert scratch.reap_orphans("onboard-sbx-", str(tmp_path)) == []
        assert all(p.exists() for p in homes)
    finally:
        live.kill()
        live.communicate(timeout=30)


def test_a_fresh_unlocked_home_and_strangers_are_not_touched(tmp_path):
    from sandboxes import scratch

    fresh = tmp_path / "onboard-sbx-p1-young"  # its creator may not hold the lock yet
    fresh.mkdir()
    old_style = tmp_path / "onboard-sbx-abcd"  # not ours to judge: no pid, no lock protocol
    old_style.mkdir()
    _age([old_style])
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / "onboard-sbx-p2-link"
    link.symlink_to(target)
    _age([link])
    assert scratch.reap_orphans("onboard-sbx-", str(tmp_path)) == []
    assert fresh.exists() and old_style.exists() and (target / "keep").exists()
