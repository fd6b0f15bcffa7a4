"""The Sandbox protocol: run one command in isolation and report what happened.

Sandboxes know nothing about onboarding; they run commands. Paths inside a
sandbox differ by backend, so callers describe what they need as mounts and
ask the sandbox where each mount appears (`inside`).
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Protocol, runtime_checkable

Status = Literal["ok", "error", "timeout", "killed", "infra_error"]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str  # absolute path inside a container backend
    read_only: bool = True


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 600.0
    memory_mb: int = 8192
    pids: int = 512
    cpus: float = 2.0
    # This job's share of contended CPU against other jobs (1.0 = even); a cap is `cpus`, not this.
    cpu_weight: float = 1.0
    file_size_mb: int = 4096
    tmp_size_mb: int = 2048
    output_bytes: int = 256_000  # per stream, head + tail kept
    # Kill when neither stream has printed for this long (a hung import, a
    # deadlocked test); None disables it. Separate from the hard timeout.
    idle_timeout_s: float | None = None


@dataclass
class Result:
    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False
    backend: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    reason: str = ""  # why a run ended abnormally: which timeout, OOM, refused start

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class UnsafeMount(ValueError):
    """A mount that would hand the command a way out (engine socket, /)."""


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run here (no engine, no image)."""


@runtime_checkable
class Sandbox(Protocol):
    name: str
    python: str  # interpreter to use inside this sandbox
    warning: str | None  # what this backend does not isolate, said once to the user (None: nothing)

    def inside(self, mount: Mount) -> str:
        """Where `mount` appears to the command."""

    def run(
        self,
        cmd: list[str],
        *,
        mounts: list[Mount] = (),
        env: dict[str, str] | None = None,
        workdir: Mount | None = None,
        limits: Limits | None = None,
    ) -> Result:
        """Run `cmd`; never raises for failures of the command itself."""


# Engine sockets a command must never reach: with one, it can start a
# privileged container and own the host.
ENGINE_SOCKETS = (
    "/var/run/docker.sock", "/run/docker.sock", "/run/onboarder-docker.sock",
    "/run/containerd/containerd.sock", "/run/podman/podman.sock",
)


def _engine_sockets() -> set[str]:
    paths = set(ENGINE_SOCKETS)
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        paths.add(host[len("unix://"):])
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.add(os.path.join(os.environ["XDG_RUNTIME_DIR"], "docker.sock"))
    return paths | {os.path.realpath(p) for p in paths}


def check_mount(mount: Mount) -> None:
    """Refuse mounts exposing an engine socket (directly or via a parent dir)."""
    if not str(mount.target).startswith("/"):
        raise UnsafeMount(f"mount target must be absolute: {mount.target!r}")
    real = os.path.realpath(mount.source)
    if real == "/":
        raise UnsafeMount("refusing to mount the host root")
    try:
        if stat.S_ISSOCK(os.stat(real).st_mode):
            raise UnsafeMount(f"refusing to mount a socket: {mount.source}")
    except FileNotFoundError:
        pass  # the backend reports a missing source as an infra error
    for sock in _engine_sockets():
        if sock == real or sock.startswith(real + "/"):
            raise UnsafeMount(f"refusing {mount.source}: it exposes the engine socket {sock}")


# Version control metadata inside a mount: a worktree's `.git` names the host
# repository it belongs to, whose config and hooks the host's git trusts.
# Every backend hides these from the command.
METADATA = (".git",)


def masked(mount: Mount) -> list[tuple[str, str]]:
    """(target path, "dir" | "file") of the metadata entries to hide in `mount`."""
    out = []
    for name in METADATA:
        entry = Path(mount.source) / name
        if entry.is_symlink():
            raise UnsafeMount(f"refusing {mount.source}: its {name} is a symlink")
        if entry.is_dir():
            out.append((f"{mount.target.rstrip('/')}/{name}", "dir"))
        elif entry.exists():
            out.append((f"{mount.target.rstrip('/')}/{name}", "file"))
    return out


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit for the duration, so `finally` blocks
    (container removal, process-group kill) run when a supervisor stops us.
    Only where Python would otherwise die silently: main thread, default handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def bound_output(data: bytes, limit: int) -> tuple[str, bool]:
    """Keep the head and tail of `data` within `limit` bytes, with a marker."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace"), False
    half = limit // 2
    dropped = len(data) - 2 * half
    text = (
        data[:half].decode("utf-8", "replace")
        + f"\n[... {dropped} bytes truncated ...]\n"
        + data[-half:].decode("utf-8", "replace")
    )
    return text, True
