"""Real RabbitMQ + Postgres on loopback and `onboard worker` processes, for the scale-marked tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import TESTS

SHIM = "import tests.scale.worker_shim; from agent.cli.main import main; main()"


def require_scale_stack():
    for mod in ("celery", "kombu", "psycopg", "langgraph.checkpoint.postgres"):
        pytest.importorskip(mod, reason=f"scale mode not installed ({mod}): pip install -r requirements-scale.lock")


@dataclass
class Cluster:
    root: Path
    pg: object
    mq: object
    procs: list = field(default_factory=list)
    _dbs: int = 0
    _logs: int = 0

    def database(self) -> str:
        """A fresh database (its own ledger and checkpoints) on the shared server."""
        import psycopg

        self._dbs += 1
        name = f"onboard_{self._dbs}"
        with psycopg.connect(self.pg.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.pg.url.rsplit("/", 1)[0] + "/" + name

    def env(self, db: str, data_dir: Path, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
        env.update(PYTHONPATH=str(TESTS.parent), ONBOARD_BROKER_URL=self.mq.url, ONBOARD_CHECKPOINT_URL=db,
                   ONBOARD_DATA_DIR=str(data_dir), ONBOARD_SANDBOX="local", ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX="1",
                   **{k: str(v) for k, v in extra.items()})
        return env

    def worker(self, name: str, env: dict, *args: str) -> subprocess.Popen:
        # A log per worker start: tests on one cluster reuse worker names (and, with one trigger key, job ids).
        self._logs += 1
        path = self.root / f"{name}-{self._logs}.log"
        log = open(path, "w")
        proc = subprocess.Popen([sys.executable, "-c", SHIM, "worker", "-n", f"{name}@test", *args], env=env,
                                cwd=TESTS.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = path
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the whole worker: the Celery parent and its job process (its own session)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(proc)
        self.procs.clear()


def wait_ready(proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}: {proc.log_path.read_text()[-2000:]}")
        if "ready." in proc.log_path.read_text():
            return
        time.sleep(0.3)
    raise AssertionError(f"worker not ready in {timeout} s: {proc.log_path.read_text()[-2000:]}")
