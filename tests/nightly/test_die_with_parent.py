"""A job process outlives a SIGKILLed parent by at most the grace period, even when its main thread
swallows the SystemExit the parent-death SIGTERM raises (a process pool worker's loop does exactly that)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

PARENT = textwrap.dedent("""
    import multiprocessing, sys, time

    def worker(ready):
        from agent.nightly.job import die_with_parent
        die_with_parent(grace_s=1.0)
        ready.set()
        while True:  # the pool worker's loop: a BaseException from the job is caught and the loop goes on
            try:
                time.sleep(3600)
            except BaseException:
                pass

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        p = ctx.Process(target=worker, args=(ready,))
        p.start()
        assert ready.wait(120), "the worker did not start"
        print(p.pid, flush=True)
        time.sleep(3600)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_that_swallows_the_exit_is_still_gone_after_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    child = int(parent.stdout.readline())
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the job outlived its killed parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
