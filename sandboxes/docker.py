"""Docker backend: one fresh, locked-down container per command.

Every container: no network, uid 1000, all capabilities dropped,
no-new-privileges, read-only root with a size-limited tmpfs /tmp, memory
(without swap) / CPU / pids / file-size limits, only the caller's mounts,
only the caller's env (plus PATH/HOME), any `.git` inside a mount masked
(an empty read-only tmpfs or /dev/null), no logging driver (output is read
from the attach stream and bounded in memory, so gigabytes of output never
reach the daemon's disk). It is removed in `finally` whatever happens,
including KeyboardInterrupt and SIGTERM; containers of callers that died
by SIGKILL are reaped by the next DockerSandbox on the same host, and those
of a dead scale worker by the next worker on its engine (reap_dead_workers). A GPU's
or NPU's device nodes are passed in only when that device is requested and
present on the host.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time

from sandboxes.base import Limits, Mount, Result, check_mount, masked, sigterm_raises
from sandboxes.cgroup import shares
from sandboxes.images import DEFAULT_IMAGE
from sandboxes.output import OutputBuffer, last_activity

LABEL = "onboarder.sandbox"
OWNER = "onboarder.owner"  # "<hostname>:<pid>" of the process that created it
# A scale-mode worker's containers also say which worker started them, when, and for how long at most: a worker
# that dies leaves them on its engine, where the next worker reaps them by age (see reap_dead_workers).
WORKER = "onboarder.worker"
STARTED = "onboarder.started"  # epoch seconds
TIMEOUT = "onboarder.timeout"  # the command's hard timeout, seconds
WORKER_ENV = "ONBOARD_WORKER_ID"  # set by `onboard worker`, unique per worker start
REAP_GRACE_S = 60.0  # past its hard timeout, a live caller has killed and removed its container
DEFAULT_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Device nodes of OpenVINO's accelerators: Intel GPUs through DRM render nodes, NPUs through the accel class.
DEVICE_NODES = {"GPU": "/dev/dri", "NPU": "/dev/accel"}
DEVICE_FILES = {"GPU": "renderD", "NPU": "accel"}

_live: set[str] = set()
_live_client = None


def _remove_live() -> None:
    # Last resort at interpreter exit (e.g. a run in a non-main thread cut short).
    for cid in list(_live):
        try:
            _live_client.api.remove_container(cid, force=True)
        except Exception:
            pass


atexit.register(_remove_live)


def _client(timeout: float | None):
    import docker

    return docker.from_env(version="auto", timeout=timeout)


def _pump(stream, out: OutputBuffer, err: OutputBuffer) -> None:
    try:
        for o, e in stream:
            out.feed(o or b"")
            err.feed(e or b"")
    except Exception:
        pass  # the stream is torn down when the container is killed or removed


class DockerSandbox:
    name = "docker"
    warning = None

    def __init__(self, image: str = DEFAULT_IMAGE, *, client=None, python: str = "python",
                 user: str = "1000:1000", reap: bool = True, devices: tuple[str, ...] = ()):
        global _live_client
        self.image = image
        self.devices = tuple(devices)  # accelerators the jobs may use (GPU, NPU): passed only if present
        self.python = python
        self.user = user
        self.client = client or _client(timeout=60)
        # Attach streams stay silent as long as the command is; a read timeout
        # there would cut a quiet run short, so that client never times out.
        self._stream = _client(timeout=None)
        _live_client = self.client
        if reap:
            self.reap_orphans()

    def inside(self, mount: Mount) -> str:
        return mount.target

    def reap_orphans(self) -> int:
        """Remove sandbox containers left by dead processes on this host."""
        host = socket.gethostname()
        n = 0
        for c in self.client.api.containers(all=True, filters={"label": LABEL}):
            owner = (c.get("Labels") or {}).get(OWNER, "")
            h, _, pid = owner.rpartition(":")
            if h == host and pid.isdigit() and not _pid_alive(int(pid)):
                try:
                    self.client.api.remove_container(c["Id"], force=True)
                    n += 1
                except Exception:
                    pass
        return n

    def _environment(self, env: dict[str, str] | None) -> dict[str, str]:
        environment = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                       "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        for k, v in (env or {}).items():
            if not isinstance(k, str) or not isinstance(v, str) or "=" in k or "\0" in v:
                raise ValueError(f"bad environment entry {k!r}")
            environment[k] = v
        return environment

    def _create(self, cmd: list[str], mounts: list[Mount], env: dict, workdir: Mount | None,
                limits: Limits):
        return self.client.containers.create(**self.container_spec(cmd, mounts, env, workdir, limits))

    def container_spec(self, cmd: list[str], mounts: list[Mount], env: dict, workdir: Mount | None,
                       limits: Limits) -> dict:
        """Every argument of `containers.create`: the lockdown, plus the requested accelerators present."""
        from docker.types import LogConfig, Ulimit
        from docker.types import Mount as DockerMount

        fsize = limits.file_size_mb << 20
        return dict(
            image=self.image, command=cmd, user=self.user, environment=env,
            working_dir=workdir.target if workdir else "/tmp",
            mounts=[DockerMount(m.target, str(m.source.resolve()), type="bind", read_only=m.read_only)
                    for m in mounts] + _masks(mounts),
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,exec,size={limits.tmp_size_mb}m,mode=1777"},
            mem_limit=f"{limits.memory_mb}m", memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9), cpu_shares=shares(limits.cpu_weight), pids_limit=limits.pids,
            ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize), Ulimit(name="core", soft=0, hard=0)],
            ipc_mode="private", init=True,  # an init reaps zombies, which count against pids
            log_config=LogConfig(type="none"),
            labels=labels(limits),
            stdin_open=False, tty=False, detach=True,
            **device_args(self.devices),
        )

    def run(self, cmd, *, mounts=(), env=None, workdir=None, limits=None) -> Result:
        import docker
        import requests

        limits = limits or Limits()
        mounts = list(mounts)
        if workdir is not None and workdir not in mounts:
            mounts.append(workdir)
        for m in mounts:
            check_mount(m)
        if len({m.target for m in mounts}) != len(mounts):
            raise ValueError("two mounts share a target")
        environment = self._environment(env)
        out, err = OutputBuffer(limits.output_bytes), OutputBuffer(limits.output_bytes)
        start = time.monotonic()
        cid = None
        stream = None
        with sigterm_raises():
            try:
                container = self._create(list(cmd), mounts, environment, workdir, limits)
                cid = container.id
                _live.add(cid)
                # Attach before start, so not a byte of output is missed.
                stream = self._stream.api.attach(cid, stdout=True, stderr=True, stream=True, demux=True)
                reader = threading.Thread(target=_pump, args=(stream, out, err), daemon=True)
                reader.start()
                self.client.api.start(cid)
                status, reason, code = self._watch(cid, reader, out, err, limits, start)
            except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
                msg = getattr(exc, "explanation", None) or str(exc)
                return Result("infra_error", None, out.text()[0], f"docker: {msg}",
                              time.monotonic() - start, backend=self.name, reason="engine error")
            finally:
                if stream is not None:
                    try:
                        stream.close()
                    except Exception:
                        pass
                if cid is not None:
                    self._remove(cid)
        stdout, t1 = out.text()
        stderr, t2 = err.text()
        return Result(status, code, stdout, stderr, time.monotonic() - start, t1 or t2,
                      backend=self.name, reason=reason)

    def _watch(self, cid: str, reader: threading.Thread, out, err, limits: Limits, start: float):
        deadline = start + limits.timeout_s
        timed_out = ""
        while reader.is_alive():
            now = time.monotonic()
            if now >= deadline:
                timed_out = f"hard timeout after {limits.timeout_s:g} s"
            elif limits.idle_timeout_s and now - last_activity(out, err) >= limits.idle_timeout_s:
                timed_out = f"no output for {limits.idle_timeout_s:g} s"
            if timed_out:
                self._kill(cid)
                reader.join(timeout=10)
                return "timeout", timed_out, None
            reader.join(timeout=min(deadline - now, 0.2))
        # The stream ends when the container's stdio closes; its exit follows.
        try:
            code = self.client.api.wait(cid, timeout=max(deadline - time.monotonic(), 1.0))["StatusCode"]
        except Exception:
            self._kill(cid)
            return "timeout", f"hard timeout after {limits.timeout_s:g} s", None
        state = self.client.api.inspect_container(cid)["State"]
        if state.get("OOMKilled"):
            return "killed", f"out of memory (limit {limits.memory_mb} MB)", code
        if code == 0:
            return "ok", "", 0
        if code == 128 + 25:  # SIGXFSZ
            return "error", f"file size limit ({limits.file_size_mb} MB)", code
        return "error", "", code

    def _kill(self, cid: str) -> None:
        try:
            self.client.api.kill(cid)  # SIGKILL to the init; the pid namespace dies with it
        except Exception:
            pass

    def _remove(self, cid: str) -> None:
        for attempt in range(3):
            try:
                self.client.api.remove_container(cid, force=True)
                break
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    break
                time.sleep(0.2 * (attempt + 1))
        _live.discard(cid)


def labels(limits: Limits, *, now: float | None = None, env=os.environ) -> dict[str, str]:
    out = {LABEL: "1", OWNER: f"{socket.gethostname()}:{os.getpid()}",
           STARTED: f"{time.time() if now is None else now:.0f}", TIMEOUT: f"{limits.timeout_s:g}"}
    if env.get(WORKER_ENV):
        out[WORKER] = env[WORKER_ENV]
    return out


def dead_workers_orphan(tags: dict[str, str], now: float, alive) -> str | None:
    """Why a container left by a scale worker is an orphan (None: keep it).

    Both must hold: older than its hard timeout (plus a grace), which a live caller never lets it reach,
    and its worker not alive (`alive(worker_id)`): neither alone is proof, a late heartbeat or a clock
    step would otherwise remove a running command."""
    worker = tags.get(WORKER)
    if tags.get(LABEL) != "1" or not worker:
        return None  # not a worker's sandbox: the host:pid reaper's business
    try:
        age, limit = now - float(tags[STARTED]), float(tags[TIMEOUT])
    except (KeyError, ValueError):
        return None
    if age <= limit + REAP_GRACE_S or alive(worker):
        return None
    return f"worker {worker} is gone and the container is {age:.0f} s old (hard timeout {limit:g} s)"


def reap_dead_workers(client, alive, now: float | None = None) -> list[str]:
    """Remove the sandbox containers on `client`'s engine that dead_workers_orphan names; their ids."""
    now = time.time() if now is None else now
    removed = []
    for c in client.api.containers(all=True, filters={"label": WORKER}):
        if dead_workers_orphan(c.get("Labels") or {}, now, alive) is None:
            continue
        try:
            client.api.remove_container(c["Id"], force=True)
            removed.append(c["Id"])
        except Exception:  # gone already, or the engine refused: the next pass tries again
            continue
    return removed


def device_args(requested, *, exists=os.path.exists, listdir=os.listdir, stat=os.stat) -> dict:
    """Extra `containers.create` arguments for the requested accelerators whose device nodes exist here:
    the node directory and the groups owning its nodes (render), so uid 1000 may open them. Nothing for
    CPU, for an absent device or an unknown name: the lockdown is otherwise untouched."""
    devices, groups = [], set()
    for name in requested or ():
        node = DEVICE_NODES.get(name)
        if node is None or not exists(node):
            continue
        devices.append(f"{node}:{node}:rwm")
        groups |= {stat(os.path.join(node, n)).st_gid for n in listdir(node) if n.startswith(DEVICE_FILES[name])}
    return {"devices": devices, "group_add": sorted(str(g) for g in groups)} if devices else {}


def _masks(mounts: list[Mount]) -> list:
    # A worktree's `.git` names the host repository whose config the host's git trusts.
    from docker.types import Mount as DockerMount

    out = []
    for m in mounts:
        for target, kind in masked(m):
            out.append(DockerMount(target, None, type="tmpfs", read_only=True, tmpfs_size=4096) if kind == "dir"
                       else DockerMount(target, "/dev/null", type="bind", read_only=True))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
