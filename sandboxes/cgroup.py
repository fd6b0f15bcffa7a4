"""Best-effort cgroup for the local backend (root only).

rlimits cannot stop a fork bomb run by root (the kernel exempts uid 0 from
RLIMIT_NPROC, even inside a user namespace) and a process-group kill misses
children that called setsid. A cgroup gives exact pids/memory/CPU limits and
a kill that finds every process. Each cgroup is created *under our own*
cgroup, so a command can never escape limits the machine already puts on us.
Anything that fails here means "no cgroup": the caller falls back to rlimits.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("pids", "memory", "cpu", "freezer")


def _own_paths() -> dict[str, str]:
    """controller -> our cgroup path ('' key for the v2 unified hierarchy)."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            paths[c] = path
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def shares(cpu_weight: float) -> int:
    """cgroup v1 / Docker CPU shares for a relative weight (1.0 is the kernel's default 1024)."""
    return max(2, min(262144, round(1024 * cpu_weight)))


# A job's cgroup is empty only for the moment before its process joins, so an empty one this old was
# left by a host process that died before `remove()` (SIGKILL, a killed worker): 91 piled up in a day here.
STALE_S = 600.0


def reap_stale(own: dict[str, str], min_age_s: float = STALE_S, now: float | None = None) -> int:
    """Remove empty `onboarder-*` cgroups under ours older than `min_age_s`; rmdir refuses a busy one."""
    now = time.time() if now is None else now
    parents = [ROOT / own.get("", "/").lstrip("/")] if (ROOT / "cgroup.controllers").exists() else \
        [ROOT / c / own[c].lstrip("/") for c in V1_CONTROLLERS if c in own and (ROOT / c).is_dir()]
    removed = 0
    for parent in parents:
        try:
            stale = [d for d in parent.glob("onboarder-*") if now - d.stat().st_mtime > min_age_s]
        except OSError:
            continue
        for d in stale:
            try:
                d.rmdir()
                removed += 1
            except OSError:  # busy (a live job) or already gone
                pass
    return removed


class Cgroup:
    def __init__(self, dirs: dict[str, Path], unified: bool):
        self.dirs = dirs  # controller (or "" for v2) -> cgroup dir
        self.unified = unified

    @classmethod
    def create(cls, *, pids: int, memory_mb: int, cpus: float, cpu_weight: float = 1.0) -> Cgroup | None:
        if os.geteuid() != 0:
            return None
        name = f"onboarder-{uuid.uuid4().hex[:12]}"
        made: dict[str, Path] = {}
        try:
            own = _own_paths()
            reap_stale(own)
            if (ROOT / "cgroup.controllers").exists():
                made[""] = ROOT / own.get("", "/").lstrip("/") / name
                made[""].mkdir()
                cg = cls(made, True)
                d = made[""]
                # Limit files exist only where the parent delegates the controller.
                for file, value in (("pids.max", str(pids)), ("memory.max", str(memory_mb << 20)),
                                    ("memory.swap.max", "0"), ("cpu.max", f"{int(cpus * 100000)} 100000"),
                                    ("cpu.weight", str(min(10000, max(1, round(100 * cpu_weight)))))):
                    if (d / file).exists():
                        _write(d / file, value)
                return cg
            for ctrl in V1_CONTROLLERS:
                if (ROOT / ctrl / "cgroup.procs").exists() and ctrl in own:
                    made[ctrl] = ROOT / ctrl / own[ctrl].lstrip("/") / name
                    made[ctrl].mkdir()
            if "pids" not in made:
                raise OSError("no pids controller")
            cg = cls(made, False)
            _write(made["pids"] / "pids.max", str(pids))
            if "memory" in made:
                _write(made["memory"] / "memory.limit_in_bytes", str(memory_mb << 20))
                memsw = made["memory"] / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # no swapping past the limit either
                    _write(memsw, str(memory_mb << 20))
            if "cpu" in made and (made["cpu"] / "cpu.cfs_quota_us").exists():
                _write(made["cpu"] / "cpu.cfs_period_us", "100000")
                _write(made["cpu"] / "cpu.cfs_quota_us", str(int(cpus * 100000)))
                _write(made["cpu"] / "cpu.shares", str(shares(cpu_weight)))
            return cg
        except OSError:
            cls(made, False).remove()
            return None

    @property
    def limits_pids(self) -> bool:
        """Whether this cgroup caps the job's process count (the v2 controller may not be delegated)."""
        if self.unified:
            return (self.dirs[""] / "pids.max").exists()
        return "pids" in self.dirs

    @property
    def procs_files(self) -> list[bytes]:
        """Files the child writes its pid to (pre-encoded: it runs between fork and exec)."""
        return [os.fsencode(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return found

    def _freeze(self, on: bool) -> None:
        try:
            if self.unified:
                _write(self.dirs[""] / "cgroup.freeze", "1" if on else "0")
            elif "freezer" in self.dirs:
                _write(self.dirs["freezer"] / "freezer.state", "FROZEN" if on else "THAWED")
        except OSError:
            pass

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL everything in the cgroup; True when it is empty afterwards."""
        if self.unified and (self.dirs[""] / "cgroup.kill").exists():
            try:
                _write(self.dirs[""] / "cgroup.kill", "1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            # Frozen, a forking process cannot add children between our reads and kills.
            self._freeze(True)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._freeze(False)
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        f = self.dirs[""] / "memory.events" if self.unified else self.dirs.get("memory", ROOT) / "memory.oom_control"
        try:
            for line in f.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):  # the kernel needs a moment after the last exit
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
