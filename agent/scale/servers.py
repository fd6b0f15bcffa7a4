"""Postgres and RabbitMQ as plain processes on loopback, each with its own data dir (tests and the bench).

Neither runs as root: initdb refuses it, and rabbitmq-server drops to its
`rabbitmq` user; so the dirs are chowned to those users. Every server is
stopped by its own pid file / data dir, never by name.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("ONBOARD_PG_BIN", "/usr/local/bin"))


class ServerUnavailable(RuntimeError):
    """A server cannot start here (not installed, no user to run it as): the reason, in one line."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise ServerUnavailable(f"{' '.join(cmd[:4])} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return proc.stdout


def _as(user: str) -> list[str]:
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _owned_by(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)
        for p in path.rglob("*"):
            shutil.chown(p, user, user)


@dataclass
class Postgres:
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/onboard"

    def start(self) -> "Postgres":
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise ServerUnavailable(f"no PostgreSQL binaries in {PG_BIN} (set ONBOARD_PG_BIN)")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except LookupError:
                raise ServerUnavailable("no `postgres` user to run PostgreSQL as (initdb refuses root)") from None
        data = self.root / "data"
        _run([*_as("postgres"), str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        _run([*_as("postgres"), str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w",
              "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200",
              "start"])
        try:
            import psycopg

            with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE onboard")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run([*_as("postgres"), str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=60)


@dataclass
class RabbitMQ:
    root: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    consumer_timeout_ms: int = 7_200_000  # ≥ 2 × the longest job: else a long job's channel is closed

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict:
        r = self.root
        return {**os.environ, "HOME": str(r / "home"), "RABBITMQ_NODENAME": f"onboard{self.port}@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1", "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
                "RABBITMQ_LOG_BASE": str(r / "log"), "RABBITMQ_PID_FILE": str(r / "rabbit.pid"),
                "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
                # Else the Erlang distribution port listens on every interface.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def start(self) -> "RabbitMQ":
        if shutil.which("rabbitmq-server") is None:
            raise ServerUnavailable("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        for d in ("home", "mnesia", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(f"consumer_timeout = {self.consumer_timeout_ms}\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        try:
            _owned_by(self.root, "rabbitmq")
        except LookupError:
            raise ServerUnavailable("no `rabbitmq` user (the package creates it)") from None
        with open(self.root / "stdout.log", "w") as log:
            subprocess.Popen(["rabbitmq-server"], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        _run(["rabbitmqctl", "-q", "wait", "--timeout", "90", str(self.root / "rabbit.pid")], env=self.env(),
             timeout=120)
        return self

    def stop(self) -> None:
        pidfile = self.root / "rabbit.pid"
        if pidfile.exists():
            subprocess.run(["rabbitmqctl", "-q", "stop", str(pidfile)], env=self.env(), capture_output=True,
                           timeout=120)
        # rabbit started its own epmd on our port: stop that one only (by its port).
        subprocess.run(["epmd", "-kill"], env=self.env(), capture_output=True, timeout=30)


def wait_for(check, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
