"""Local backend: bubblewrap namespaces for machines without a container engine.

What the command gets (sandboxes/bwrap.py builds the view):
  - as root, an unprivileged uid (default 65534) with no capabilities and
    no_new_privs; it never runs as root. Any other user keeps its own uid in
    an unprivileged user namespace;
  - a new root: host /usr and a few /etc files, the interpreter's prefixes,
    all read-only; the caller's mounts at their targets (read-only unless
    asked; any `.git` in them masked); private /proc, /dev and a tmpfs /tmp
    (limited to `tmp_size_mb`) that is also HOME;
  - new pid, ipc, uts, network and cgroup namespaces: no host process to see
    or signal, no host socket of any kind, no network;
  - only PATH/HOME/TMPDIR/LANG plus what the caller passes in its
    environment, and no secret in any process it can see;
  - rlimits (address space, file size, CPU seconds, processes, no cores) and,
    as root, a cgroup under our own (sandboxes/cgroup.py) with exact
    pids/memory/CPU limits and a kill that reaches every process;
  - its own session, SIGKILLed as a whole on timeout, on exit of the caller
    (--die-with-parent and PDEATHSIG) and when the caller is interrupted;
  - stdout/stderr bounded head+tail in memory, never spooled to disk.
Without bwrap (or setpriv, as root), or where namespaces are refused, it
fails closed: SandboxUnavailable with the one-line reason, never a run
without the sandbox. Weaker than docker: the host kernel without a seccomp
filter, and the host's /usr and interpreter are visible (read-only).
Mount sources must be readable (rw: writable) by the command's uid.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time

from sandboxes import bwrap
from sandboxes.base import Limits, Mount, Result, SandboxUnavailable, UnsafeMount, check_mount, sigterm_raises
from sandboxes.cgroup import Cgroup
from sandboxes.output import OutputBuffer, last_activity

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux/glibc: the process-group kill still applies
    _prctl = None

NOBODY = bwrap.NOBODY
# bwrap's environment: visible to nothing the command can read, and minimal anyway.
BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


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

    def __init__(self, python: str | None = None, user: int | None = None, use_cgroup: bool = True):
        """`user`: the uid commands run as when we are root (default 65534); never 0."""
        # The venv's own bin directory, links resolved (a checkout under /tmp links .venv there, and the
        # sandbox's /tmp is its own tmpfs); the file name stays, so python still finds its pyvenv.cfg.
        exe = python or sys.executable
        self.python = os.path.join(os.path.realpath(os.path.dirname(exe)), os.path.basename(exe))
        if os.geteuid() == 0:
            self.user: int | None = NOBODY if user is None else user
            if self.user == 0:
                raise ValueError("the local sandbox never runs commands as root (user=0)")
        elif user is not None and user != os.geteuid():
            raise ValueError("user= needs root (it drops privileges to that uid)")
        else:
            self.user = None
        self._bwrap, self._setpriv = bwrap.tools()
        why = bwrap.probe(self._bwrap, self._setpriv, self.python, self.user)
        if why:
            raise SandboxUnavailable(f"local sandbox unavailable: bubblewrap cannot build its sandbox here ({why})")
        self.use_cgroup = use_cgroup and os.geteuid() == 0
        runs_as = self.user if self.user is not None else os.geteuid()
        gaps = [f"runs as uid {runs_as} in bubblewrap namespaces on the host kernel without a seccomp filter",
                "host /usr and the interpreter are visible read-only"]
        if not self.use_cgroup:
            gaps.append("process/memory limits are per-process rlimits only (no cgroup)")
        self.warning = "local sandbox: weaker isolation than docker: " + "; ".join(gaps)
        log.info(self.warning)

    def inside(self, mount: Mount) -> str:
        return mount.target

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {
            # The interpreter's own dir first, so `python` is the sandbox's python.
            "PATH": f"{os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        }
        for k, v in (extra or {}).items():
            if not isinstance(k, str) or not isinstance(v, str) or "=" in k or "\0" in v or not k:
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
        # RLIMIT_NPROC counts every process of the uid, and concurrent jobs share the uid: their threads
        # would eat this job's allowance. A cgroup caps this job alone, so the rlimit is only the fallback.
        nproc = None
        if cgroup is None or not cgroup.limits_pids:
            counted = self.user if self.user is not None else os.geteuid()
            nproc = _user_processes(counted) + limits.pids

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
            if nproc is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))  # counts the command's uid
        return pre

    def run(self, cmd, *, mounts=(), env=None, workdir=None, limits=None) -> Result:
        limits = limits or Limits()
        mounts = list(mounts)
        if workdir is not None and workdir not in mounts:
            mounts.append(workdir)
        for m in mounts:
            check_mount(m)
            bwrap.check_target(m.target)
            bwrap.masked(m)
        if len({os.path.normpath(m.target) for m in mounts}) != len(mounts):
            raise ValueError("two mounts share a target")
        environment = self._env(env)
        start = time.monotonic()
        missing = [str(m.source) for m in mounts if not os.path.exists(m.source)]
        if missing:
            return Result("infra_error", None, "", f"mount source does not exist: {missing[0]}",
                          time.monotonic() - start, backend=self.name, reason="start failed")
        with sigterm_raises():
            return self._run(list(cmd), mounts, environment, workdir, limits, start)

    def _run(self, argv, mounts, environment, workdir, limits, start) -> Result:
        status_r, status_w = os.pipe()
        try:
            full = bwrap.command(self._bwrap, self._setpriv, bwrap.base_layout(self.python, limits.tmp_size_mb),
                                 mounts, environment, workdir.target if workdir else "/tmp", argv, self.user,
                                 status_w)
        except (OSError, ValueError) as exc:  # UnsafeMount (a ValueError) included: a caller's mistake
            os.close(status_r)
            os.close(status_w)
            if isinstance(exc, UnsafeMount):
                raise
            return Result("infra_error", None, "", f"local sandbox: {exc}", time.monotonic() - start,
                          backend=self.name, reason="start failed")
        cgroup = Cgroup.create(pids=limits.pids, memory_mb=limits.memory_mb, cpus=limits.cpus,
                               cpu_weight=limits.cpu_weight) \
            if self.use_cgroup else None
        out, err = OutputBuffer(limits.output_bytes), OutputBuffer(limits.output_bytes)
        proc = None
        readers = []
        status, reason, code, oom = "ok", "", None, False
        try:
            try:
                proc = subprocess.Popen(
                    full, cwd="/", env=BWRAP_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True, pass_fds=(status_w,),
                    preexec_fn=self._preexec(limits, cgroup),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return Result("infra_error", None, "", f"could not start bwrap: {exc}",
                              time.monotonic() - start, backend=self.name, reason="start failed")
            finally:
                os.close(status_w)
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
            started, exit_code = _read_status(status_r)
        stdout, t1 = out.text()
        stderr, t2 = err.text()
        if status == "ok" and not started and (oom or (code or 0) < 0):
            status, reason = ("killed", f"out of memory (limit {limits.memory_mb} MB)") if oom else \
                ("killed", f"sandbox killed by signal {-code}")
        elif status == "ok" and not started:
            last = [ln for ln in stderr.splitlines() if ln.strip()][-1:] or [f"bwrap exited with {code}"]
            return Result("infra_error", None, stdout, stderr, time.monotonic() - start, t1 or t2,
                          backend=self.name, reason=f"sandbox setup failed: {last[0]}"[:300])
        elif status == "ok":
            code = exit_code
            status, reason = _classify(code, oom, limits)
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
        # SIGKILL, not SIGTERM: a hostile or wedged child may ignore TERM. bwrap's
        # --die-with-parent then takes the whole pid namespace down with it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if cgroup is not None:
            cgroup.kill_all()


def _read_status(fd: int) -> tuple[bool, int | None]:
    """(the command was started, its exit code) from bwrap's --json-status-fd."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except (BlockingIOError, OSError):
        pass
    finally:
        os.close(fd)
    exit_code = None
    for line in data.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("exit-code"), int):
            exit_code = doc["exit-code"]
    return exit_code is not None, exit_code


def _classify(code: int, oom: bool, limits: Limits) -> tuple[str, str]:
    # bwrap reports a command killed by signal N as exit code 128 + N.
    if code == 0:
        return "ok", ""
    if oom:
        return "killed", f"out of memory (limit {limits.memory_mb} MB)"
    if code == 128 + signal.SIGXCPU:
        return "timeout", "CPU time limit"
    if code == 128 + signal.SIGXFSZ:
        return "error", f"file size limit ({limits.file_size_mb} MB)"
    if code == 128 + signal.SIGKILL:
        return "killed", "killed by SIGKILL"
    return "error", ""
