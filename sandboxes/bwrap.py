"""The bubblewrap command line of the local backend: everything the command can see.

The command gets a new, empty root holding only: the host's /usr (and the
/bin, /lib* links into it), a short list of /etc files (no shadow, no keys),
the interpreter's prefixes read-only at their own paths, the caller's mounts
at their targets (read-only unless asked, any `.git` masked), and a private
/proc, /dev and size-limited /tmp. Its pid, ipc, uts, network and cgroup
namespaces are new: it sees no host process, no host socket (path or
abstract), no host network.

As root, bwrap runs privileged only to build that view; setpriv then drops
the command to an unprivileged uid with no capabilities (bounding set
emptied) and no_new_privs before it executes. As any other user, bwrap makes
an unprivileged user namespace and the command keeps that user's uid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sandboxes.base import Mount, SandboxUnavailable, UnsafeMount, masked

NOBODY = 65534
SYSTEM_DIRS = ("/usr",)
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("passwd", "group", "nsswitch.conf", "host.conf", "hosts", "ld.so.cache", "ld.so.conf",
       "ld.so.conf.d", "localtime", "timezone", "alternatives", "os-release", "mime.types",
       "protocols", "services", "ssl/certs", "ssl/openssl.cnf", "ca-certificates")
RESERVED = ("/proc", "/dev", "/usr", "/etc")
INSTALL_HINT = "install it: apt-get install bubblewrap"
MIN_VERSION = (0, 8)  # --disable-userns


def tools() -> tuple[str, str]:
    """(bwrap, setpriv) paths, or SandboxUnavailable saying what is missing."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        raise SandboxUnavailable(f"local sandbox unavailable: bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    out = ""
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        version = tuple(int(x) for x in out.split()[-1].split(".")[:2])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        version = (0, 0)
    if version < MIN_VERSION:
        raise SandboxUnavailable(f"local sandbox unavailable: {bwrap} is not bubblewrap >= "
                                 f"{'.'.join(map(str, MIN_VERSION))} ({out[:60] or 'no version'}); {INSTALL_HINT}")
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and not setpriv:
        raise SandboxUnavailable("local sandbox unavailable: setpriv (util-linux) is not installed; "
                                 "it drops the command to an unprivileged uid")
    return bwrap, setpriv or ""


def python_roots(python: str) -> list[str]:
    """The directories `python` needs: its venv (at the path it is called by) and the base prefix."""
    exe = python if os.path.isabs(python) else (shutil.which(python) or python)
    exe = os.path.abspath(exe)
    bindir = os.path.dirname(exe)
    roots = []
    for cfg in (os.path.join(bindir, "pyvenv.cfg"), os.path.join(os.path.dirname(bindir), "pyvenv.cfg")):
        if os.path.isfile(cfg):
            roots.append(os.path.dirname(cfg))
            for line in Path(cfg).read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    roots.append(os.path.dirname(os.path.realpath(value.strip())))
            break
    roots.append(os.path.dirname(os.path.dirname(os.path.realpath(exe))))
    for root in roots:
        if os.path.realpath(root) == "/":
            raise ValueError(f"refusing interpreter {python}: its prefix is the host root")
    return list(dict.fromkeys(roots))


class Layout:
    """Accumulates bwrap arguments; parent directories it creates are 0755 (bwrap's own are 0700)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._dirs = {"/"}
        self._bound: list[str] = []

    def _covered(self, path: str) -> bool:
        return any(path == b or path.startswith(b.rstrip("/") + "/") for b in self._bound)

    def _parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        chain = []
        while parent not in self._dirs and not self._covered(parent):
            chain.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(chain):
            self.args += ["--perms", "0755", "--dir", d]
            self._dirs.add(d)

    def conflict(self, target: str) -> str | None:
        """What a caller's mount at `target` would hide or land inside, or None."""
        t = os.path.normpath(target)
        for p in [*self._bound, *self._dirs]:
            if p in ("/", "/tmp"):
                continue
            if p == t or p.startswith(t.rstrip("/") + "/"):
                return f"it would hide {p}"
        return f"it lies inside the read-only {t}" if self._covered(t) else None

    def bind(self, source: str, target: str, read_only: bool = True) -> None:
        self._parents(target)
        self.args += ["--ro-bind" if read_only else "--bind", source, target]
        self._bound.append(target)

    def symlink(self, text: str, at: str) -> None:
        self._parents(at)
        self.args += ["--symlink", text, at]
        self._dirs.add(at)

    def tmpfs(self, target: str, perms: str, size_bytes: int | None = None, read_only: bool = False) -> None:
        self._parents(target)
        self.args += ["--perms", perms] + (["--size", str(size_bytes)] if size_bytes else []) + ["--tmpfs", target]
        if read_only:
            self.args += ["--remount-ro", target]
        self._dirs.add(target)

    def expose(self, path: str, hops: int = 0) -> None:
        """Make host `path` resolve to the same content inside, read-only, symlinks included."""
        if hops > 20:
            raise ValueError(f"too many symlinks under {path}")
        path = os.path.normpath(path)
        if self._covered(path):
            return
        cur = "/"
        for name in Path(path).parts[1:]:
            cur = os.path.join(cur, name)
            if self._covered(cur):
                return
            if os.path.islink(cur):
                text = os.readlink(cur)
                if cur not in self._dirs:
                    self.symlink(text, cur)
                rest = os.path.relpath(path, cur)
                target = os.path.normpath(os.path.join(os.path.dirname(cur), text))
                self.expose(target if rest == "." else os.path.join(target, rest), hops + 1)
                return
        if not os.path.exists(path):
            raise ValueError(f"cannot expose {path}: it does not exist")
        self.bind(path, path)


CPU_SYSFS = ("/sys/devices/system/cpu", "/sys/devices/system/node")


def base_layout(python: str, tmp_size_mb: int) -> Layout:
    lay = Layout()
    for d in SYSTEM_DIRS:
        lay.bind(d, d)
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            lay.symlink(os.readlink(link), link)
        elif os.path.isdir(link):
            lay.bind(link, link)
    lay.args += ["--perms", "0755", "--dir", "/etc"]
    lay._dirs.add("/etc")
    for name in ETC:
        src = f"/etc/{name}"
        if os.path.exists(src):
            lay.bind(src, src)
    for root in python_roots(python):
        lay.expose(root)
    lay.args += ["--proc", "/proc", "--dev", "/dev"]
    lay._dirs |= {"/proc", "/dev"}
    # CPU topology only (read-only): without it hwloc/oneDNN/OpenVINO cannot see caches and cores and the
    # verification job ran measurably slower; nothing else of /sys is shown.
    for sysdir in CPU_SYSFS:
        if os.path.isdir(sysdir):
            lay.bind(sysdir, sysdir)
    lay.tmpfs("/tmp", "1777", tmp_size_mb << 20)
    return lay


def check_target(target: str) -> None:
    norm = os.path.normpath(target)
    if norm == "/" or any(norm == r or norm.startswith(r + "/") for r in RESERVED):
        raise UnsafeMount(f"mount target {target} would replace a system directory of the sandbox")


def command(bwrap: str, setpriv: str, layout: Layout, mounts: list[Mount], env: dict[str, str],
            cwd: str, argv: list[str], uid: int | None, status_fd: int) -> list[str]:
    """The full bwrap argv running `argv` with `env` only, in `cwd`, as `uid` (None: our own)."""
    lay = layout
    masks = []
    for m in mounts:
        check_target(m.target)
        why = lay.conflict(m.target)
        if why:
            raise UnsafeMount(f"mount target {m.target}: {why}")
    for m in mounts:
        lay.bind(str(m.source), m.target, m.read_only)
        masks += masked(m)
    for target, kind in masks:
        if kind == "dir":
            lay.tmpfs(target, "0755", 4096, read_only=True)
        else:
            lay.args += ["--ro-bind", "/dev/null", target]
    head = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--hostname", "sandbox", "--json-status-fd", str(status_fd),
            "--clearenv"]
    if os.geteuid() != 0:
        head += ["--unshare-user", "--disable-userns"]
    for k, v in env.items():
        head += ["--setenv", k, v]
    tail = ["--chdir", cwd, "--"]
    if uid is not None:
        tail += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return head + lay.args + tail + argv


_probed: set[tuple[str, str, str, int | None]] = set()


def probe(bwrap: str, setpriv: str, python: str, uid: int | None) -> str:
    """'' when a trivial command runs in this layout here, else the one-line reason. Successes are cached."""
    if (bwrap, setpriv, python, uid) in _probed:
        return ""
    r, w = os.pipe()
    try:
        argv = command(bwrap, setpriv, base_layout(python, 16), [], {"PATH": "/usr/bin:/bin"}, "/tmp",
                       ["true"], uid, w)
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, pass_fds=(w,),
                             env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        os.close(w)
        os.close(r)
    if res.returncode == 0:
        _probed.add((bwrap, setpriv, python, uid))
        return ""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"bwrap exited with {res.returncode}"
