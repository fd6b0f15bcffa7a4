"""Subprocess sandbox for machines without a container engine.

Weaker isolation than Docker: it scrubs the environment, applies rlimits,
runs in its own process group (killed as a whole on timeout) and drops the
network with `unshare -n` when the kernel lets us. It says so when chosen.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandboxes.base import Limits, Mount, Result, bound_output

# Variables a command may need to run at all; everything else stays outside.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "TZ")


def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class LocalSandbox:
    name = "local"

    def __init__(self, python: str | None = None, isolate_network: bool | None = None):
        self.python = python or sys.executable
        self.isolate_network = _unshare_works() if isolate_network is None else isolate_network

    def inside(self, mount: Mount) -> str:
        return str(mount.source)

    def run(self, cmd, *, mounts=(), env=None, workdir=None, limits=None) -> Result:
        limits = limits or Limits()
        home = tempfile.mkdtemp(prefix="onboard-sbx-")
        base_env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
        base_env.update({"HOME": home, "TMPDIR": home, "PYTHONDONTWRITEBYTECODE": "1"})
        base_env.update(env or {})
        argv = list(cmd)
        if self.isolate_network:
            argv = ["unshare", "-rn", *argv]

        def _limit() -> None:
            os.setsid()
            mem = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (mem * 4, mem * 4))  # AS over-counts mmaps
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb << 20,) * 2)
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids * 8, limits.pids * 8))

        start = time.monotonic()
        out_f = tempfile.TemporaryFile()
        err_f = tempfile.TemporaryFile()
        status = "ok"
        code = None
        try:
            proc = subprocess.Popen(
                argv,
                cwd=str(workdir.source) if workdir else home,
                env=base_env,
                stdout=out_f,
                stderr=err_f,
                stdin=subprocess.DEVNULL,
                preexec_fn=_limit,
            )
        except OSError as exc:
            shutil.rmtree(home, ignore_errors=True)
            return Result("infra_error", None, "", str(exc), 0.0, backend=self.name)
        try:
            code = proc.wait(timeout=limits.timeout_s)
            status = "ok" if code == 0 else "error"
        except subprocess.TimeoutExpired:
            status = "timeout"
        except BaseException:
            status = "killed"
            raise
        finally:
            if status in ("timeout", "killed"):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            shutil.rmtree(home, ignore_errors=True)
        out_f.seek(0)
        err_f.seek(0)
        stdout, t1 = bound_output(out_f.read(), limits.output_bytes)
        stderr, t2 = bound_output(err_f.read(), limits.output_bytes)
        return Result(
            status, code, stdout, stderr, time.monotonic() - start, t1 or t2, backend=self.name
        )
