"""The Sandbox protocol: run one command in isolation and report what happened.

Sandboxes know nothing about onboarding; they run commands. Paths inside a
sandbox differ by backend, so callers describe what they need as mounts and
ask the sandbox where each mount appears (`inside`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

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
    file_size_mb: int = 4096
    tmp_size_mb: int = 2048
    output_bytes: int = 256_000  # per stream, head + tail kept


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class Sandbox(Protocol):
    name: str
    python: str  # interpreter to use inside this sandbox

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
