"""Subprocess sandbox for machines without a container engine.

WEAKER ISOLATION THAN DOCKER, and it says so (`warning`, logged once).
What it does:
  - environment scrubbed: only a minimal PATH/HOME/TMPDIR/LANG plus what the
    caller passes; host secrets (tokens, API keys) never reach the command;
  - no network: `unshare -rn` (a user + network namespace with only a down
    loopback) when the kernel permits, checked at runtime;
  - rlimits: address space, file size (per file), CPU seconds, processes, no cores;
  - as root, a cgroup under our own (sandboxes/cgroup.py): exact pids/memory/
    CPU limits and a kill that reaches children which left the process group;
  - its own session/process group, SIGKILLed as a whole on timeout, on exit
    of the main process (no stragglers) and when the caller is interrupted;
  - stdout/stderr bounded head+tail in memory, never spooled to disk.
What it does NOT do: the command sees the host filesystem. It can read any
file its uid can, and write wherever its uid can (as root: anywhere), except
files larger than the size limit. Pass `user=` (a uid, as root) to run as an
unprivileged account; rw mounts must then be writable by that uid.
Mounts are not remapped: `inside(mount)` is the host path.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

from sandboxes import scratch
from sandboxes.base import Limits, Mount, Result, check_mount, sigterm_raises
from sandboxes.cgroup import Cgroup
from sandboxes.output import OutputBuffer, last_activity

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux/glibc: the process-group kill still applies
    _prctl = None

_unshare_cache: dict[int | None, bool] = {}


def _drop_to(uid: int | None):
    def drop() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    return drop


def unshare_works(user: int | None = None) -> bool:
    """Can we make a user+network namespace here (as `user`)? Cached per uid."""
    if user not in _unshare_cache:
        exe = shutil.which("unshare")
        ok = False
        if exe:
            try:
                ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10,
                                    preexec_fn=_drop_to(user)).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        _unshare_cache[user] = ok
    return _unshare_cache[user]


def _user_processes(uid: int) -> int:
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.stat(f"/proc/{d}").st_uid == uid
            except OSError:
                pass
    return n


def _pump(stream, buf: OutputBuffer) -> None:
    try:
        while chunk := os.read(stream.fileno(), 65536):
            buf.feed(chunk)
    except (OSError, ValueError):
        pass


class LocalSandbox:
    name = "local"

    def __init__(self, python: str | None = None, isolate_network: bool | None = None,
                 user: int | None = None, use_cgroup: bool = True):
        self.python = python or sys.executable
        self.user = user
        if user is not None and os.geteuid() != 0:
            raise ValueError("user= needs root (it drops privileges to that uid)")
        self.isolate_network = unshare_works(user) if isolate_network is None else isolate_network
        self.use_cgroup = use_cgroup and os.geteuid() == 0
        runs_as = f"uid {user}" if user is not None else f"uid {os.geteuid()}"
        gaps = [f"the command runs as {runs_as} on the host filesystem (reads host files, "
                f"writes wherever {runs_as} can)"]
        if not self.isolate_network:
            gaps.append("NO network isolation (unshare -rn is not permitted here)")
        if not self.use_cgroup:
            gaps.append("process/memory limits are per-process rlimits only (no cgroup)")
        self.warning = "local sandbox: weaker isolation than docker: " + "; ".join(gaps)
        log.warning(self.warning)

    def inside(self, mount: Mount) -> str:
        return str(mount.source)

    def _env(self, home: str, extra: dict[str, str] | None) -> dict[str, str]:
        env = {
            # The interpreter's own dir first, so `python` is the sandbox's python.
            "PATH": f"{os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        }
        for k, v in (extra or {}).items():
            if not isinstance(k, str) or not isinstance(v, str) or "=" in k or "\0" in v:
                raise ValueError(f"bad environment entry {k!r}")
            env[k] = v
        return env

    def _preexec(self, limits: Limits, cgroup: Cgroup | None):
        # Runs in the child between fork and exec: only async-safe-ish calls,
        # every value computed beforehand in the parent.
        procs_files = cgroup.procs_files if cgroup else []
        mem = limits.memory_mb << 20
        fsize = limits.file_size_mb << 20
        cpu = int(limits.timeout_s * max(limits.cpus, 1.0)) + 5
        counted = self.user if self.user is not None else os.geteuid()
        nproc = _user_processes(counted) + limits.pids
        drop = _drop_to(self.user)

        def pre() -> None:
            if _prctl is not None:
                # Die with the caller: a SIGKILLed run must not leave its job running unsupervised.
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            pid = str(os.getpid()).encode()
            for f in procs_files:
                fd = os.open(f, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            resource.setrlimit(resource.RLIMIT_AS, (mem * 4, mem * 4))  # AS over-counts mmaps
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))  # ignored for uid 0
            drop()
        return pre

    def run(self, cmd, *, mounts=(), env=None, workdir=None, limits=None) -> Result:
        limits = limits or Limits()
        for m in [*mounts, *([workdir] if workdir else [])]:
            check_mount(m)
        home, held = scratch.claim("onboard-sbx-")  # a killed run's home is reaped by the next run
        if self.user is not None:
            os.chown(home, self.user, self.user)
        start = time.monotonic()
        try:
            with sigterm_raises():
                return self._run(list(cmd), env, workdir, limits, home, start)
        finally:
            scratch.release(home, held)

    def _run(self, argv, env, workdir, limits, home, start) -> Result:
        environment = self._env(home, env)
        if self.isolate_network:
            argv = ["unshare", "-rn", *argv]
        cgroup = Cgroup.create(pids=limits.pids, memory_mb=limits.memory_mb, cpus=limits.cpus) \
            if self.use_cgroup else None
        out, err = OutputBuffer(limits.output_bytes), OutputBuffer(limits.output_bytes)
        proc = None
        status, reason, code, oom = "ok", "", None, False
        try:
            try:
                proc = subprocess.Popen(
                    argv, cwd=str(workdir.source) if workdir else home, env=environment,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    start_new_session=True, preexec_fn=self._preexec(limits, cgroup),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return Result("infra_error", None, "", f"could not start {argv[0]}: {exc}",
                              time.monotonic() - start, backend=self.name, reason="start failed")
            readers = [threading.Thread(target=_pump, args=(s, b), daemon=True)
                       for s, b in ((proc.stdout, out), (proc.stderr, err))]
            # waitid(WNOWAIT) leaves the child a zombie, so its pid (= the process
            # group id) cannot be reused before we kill the group below.
            exited = threading.Thread(
                target=lambda: os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT), daemon=True)
            for t in (*readers, exited):
                t.start()
            status, reason = self._watch(exited, out, err, limits, start)
        finally:
            if proc is not None:
                self._kill(proc, cgroup)  # stragglers too, also on KeyboardInterrupt/SIGTERM
                code = proc.wait()
                for t in readers:
                    t.join(timeout=2)
                proc.stdout.close()
                proc.stderr.close()
            if cgroup is not None:
                oom = cgroup.oom_killed()
                cgroup.remove()
        if status == "ok":
            status, reason = _classify(code, oom, limits)
        stdout, t1 = out.text()
        stderr, t2 = err.text()
        return Result(status, None if status == "timeout" else code, stdout, stderr,
                      time.monotonic() - start, t1 or t2, backend=self.name, reason=reason)

    @staticmethod
    def _watch(exited, out, err, limits: Limits, start: float) -> tuple[str, str]:
        deadline = start + limits.timeout_s
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "timeout", f"hard timeout after {limits.timeout_s:g} s"
            if limits.idle_timeout_s and now - last_activity(out, err) >= limits.idle_timeout_s:
                return "timeout", f"no output for {limits.idle_timeout_s:g} s"
            exited.join(timeout=min(deadline - now, 0.2))
            if not exited.is_alive():
                return "ok", ""

    @staticmethod
    def _kill(proc: subprocess.Popen, cgroup: Cgroup | None) -> None:
        # SIGKILL, not SIGTERM: a hostile or wedged child may ignore TERM.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if cgroup is not None:
            cgroup.kill_all()


def _classify(code: int, oom: bool, limits: Limits) -> tuple[str, str]:
    if code == 0:
        return "ok", ""
    if oom:
        return "killed", f"out of memory (limit {limits.memory_mb} MB)"
    if code == -signal.SIGXCPU:
        return "timeout", "CPU time limit"
    if code == -signal.SIGXFSZ:
        return "error", f"file size limit ({limits.file_size_mb} MB)"
    if code == -signal.SIGKILL:
        return "killed", "killed by SIGKILL"
    return "error", ""
