"""Hostile code in a sandbox: every case ends contained, with a clear status,
and leaves the host as it was. Run against both backends as production runs
them: the local backend built the way the factory builds it (as root here, so
the command is dropped to an unprivileged uid; our own interpreter, which lives
under /root). The docker cases need a reachable engine with the sandbox image
(ONBOARD_SANDBOX_TEST_IMAGE and ONBOARD_SANDBOX_TEST_PYTHON pick a smaller
one); skipped with the reason otherwise, never counted as passed."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from sandboxes.base import Limits, Mount, UnsafeMount
from sandboxes.factory import engine_status
from sandboxes.images import DEFAULT_IMAGE
from sandboxes.local import LocalSandbox
from tests import TESTS

IMAGE = os.environ.get("ONBOARD_SANDBOX_TEST_IMAGE", DEFAULT_IMAGE)


def _docker_or_skip():
    client, why = engine_status(IMAGE)
    if client is None:
        pytest.skip(f"docker backend not testable here: {why}")
    from sandboxes.docker import DockerSandbox

    return DockerSandbox(IMAGE, python=os.environ.get("ONBOARD_SANDBOX_TEST_PYTHON", "python"))


def _local():
    # What make_sandbox("local") builds: no uid, no interpreter chosen by the caller.
    from sandboxes.factory import make_sandbox

    return make_sandbox("local")


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def box(request):
    return _docker_or_skip() if request.param == "docker" else _local()


@pytest.fixture
def workspace():
    # World-writable and outside /root, so an unprivileged uid can use it.
    path = Path(tempfile.mkdtemp(prefix="onboard-hostile-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def py(box, code: str) -> list[str]:
    return [box.python, "-c", code]


def ws_mount(path: Path) -> Mount:
    return Mount(path, "/scratch", read_only=False)


def at(box, mount: Mount) -> str:
    return box.inside(mount)


def test_loopback_listener_unreachable(box):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    accepted = []
    srv.settimeout(8)
    t = threading.Thread(target=lambda: accepted.append(_accept(srv)), daemon=True)
    t.start()
    r = box.run(py(box, f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"),
                limits=Limits(timeout_s=30))
    t.join(timeout=10)
    srv.close()
    assert r.status == "error", r
    assert any(e in r.stderr for e in ("ConnectionRefusedError", "OSError", "Network is unreachable",
                                         "timed out")), r.stderr[-500:]
    assert accepted == [None], "the listener saw a connection from inside the sandbox"


def _accept(srv):
    try:
        conn, _ = srv.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


FORK_BOMB = """
import os, time
n = 0
try:
    while n < 3000:  # a safety cap, far above the limit under test
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    print("refused after", n, type(exc).__name__, flush=True)
    raise SystemExit(3)
print("NOT CONTAINED", n, flush=True)
"""


def test_fork_bomb_stopped_by_pids_limit(box):
    r = box.run(py(box, FORK_BOMB), limits=Limits(timeout_s=60, pids=64))
    assert "refused after" in r.stdout, (r.status, r.stdout, r.stderr[-500:])
    assert int(r.stdout.split()[2]) < 64
    assert r.status == "error" and r.exit_code == 3


def test_disk_fill_stopped_by_file_size_limit(box, workspace):
    m = ws_mount(workspace)
    code = ("import os\nf = open(os.path.join(%r, 'fill'), 'wb')\nblock = b'x' * (1 << 20)\n"
            "for _ in range(10 * 1024):\n    f.write(block)\n") % at(box, m)
    r = box.run(py(box, code), mounts=[m], limits=Limits(timeout_s=120, file_size_mb=64))
    assert r.status == "error", r
    assert "file size limit" in r.reason or "File too large" in r.stderr, (r.reason, r.stderr[-300:])
    assert (workspace / "fill").stat().st_size <= 64 << 20


def test_writes_outside_the_workspace_fail(box, workspace, tmp_path):
    m = ws_mount(workspace)
    victim = Path("/root") if os.geteuid() == 0 else Path.home()
    marker = victim / f"onboard-hostile-{os.getpid()}"
    code = (f"import os\nfor p in ({str(marker)!r}, '/etc/onboard-hostile', '/usr/onboard-hostile'):\n"
            "    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
            "    except OSError as exc:\n        print('refused', p, type(exc).__name__)\n"
            f"open(os.path.join({at(box, m)!r}, 'ok'), 'w').write('inside')\n")
    r = box.run(py(box, code), mounts=[m], limits=Limits(timeout_s=30))
    assert r.ok, r
    assert "WROTE" not in r.stdout, r.stdout
    assert r.stdout.count("refused") == 3
    assert not marker.exists() and not Path("/etc/onboard-hostile").exists()
    assert (workspace / "ok").read_text() == "inside"


def test_host_secrets_absent(box, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_hostile_test_value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-hostile-test-value")
    monkeypatch.setenv("ONBOARD_LLM_API_KEY", "sk-hostile-test-value-2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hostile")
    r = box.run(py(box, "import os; print(sorted(os.environ))"), env={"ALLOWED": "1"},
                limits=Limits(timeout_s=30))
    assert r.ok, r
    for name in ("GITHUB_TOKEN", "OPENAI_API_KEY", "ONBOARD_LLM_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert name not in r.stdout
    assert "hostile" not in r.stdout + r.stderr
    assert "'ALLOWED'" in r.stdout


def test_engine_socket_unreachable(box):
    socks = ["/var/run/docker.sock", "/run/docker.sock", "/run/onboarder-docker.sock"]
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        socks.append(host[len("unix://"):])
    code = ("import socket\nfor p in %r:\n    s = socket.socket(socket.AF_UNIX)\n    try:\n"
            "        s.connect(p)\n        print('CONNECTED', p)\n"
            "    except OSError as exc:\n        print('no', p, type(exc).__name__)\n") % socks
    r = box.run(py(box, code), limits=Limits(timeout_s=30))
    assert r.ok, r
    assert "CONNECTED" not in r.stdout and r.stdout.count("no ") == len(socks)


def test_engine_socket_mount_refused(box, tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_dir / "docker.sock"))
    try:
        with pytest.raises(UnsafeMount):
            box.run(["true"], mounts=[Mount(sock_dir / "docker.sock", "/var/run/docker.sock")])
        with pytest.raises(UnsafeMount):
            box.run(["true"], mounts=[Mount(Path("/"), "/host")])
    finally:
        s.close()
    if os.path.exists("/run/onboarder-docker.sock"):
        with pytest.raises(UnsafeMount):
            box.run(["true"], mounts=[Mount(Path("/run"), "/hostrun")])


def test_sleep_killed_at_timeout(box):
    t = time.monotonic()
    r = box.run(["sleep", "3600"], limits=Limits(timeout_s=3))
    took = time.monotonic() - t
    assert r.status == "timeout" and "timeout" in r.reason, r
    assert took < 30


def test_huge_output_truncated(box):
    bound = 64_000
    r = box.run(py(box, "import sys\nfor _ in range(100):\n    sys.stdout.write('y' * (1 << 20))\n"),
                limits=Limits(timeout_s=120, output_bytes=bound))
    assert r.ok, (r.status, r.reason)
    assert r.truncated
    assert len(r.stdout) < bound + 200
    assert "truncated" in r.stdout or "omitted" in r.stdout


IGNORES_TERM = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:  # a child that leaves the process group as well
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(sys.argv[1] + '/child.pid', 'w').write(str(os.getpid()))
    time.sleep(3600)
    os._exit(0)
print('ignoring TERM', flush=True)
time.sleep(3600)
"""


def _with_marker(marker: str) -> list[int]:
    """Host pids whose command line carries `marker` (a pid namespace hides host pids from the job)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{d}/stat") as f:
                    zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                continue
            if marker.encode() in cmdline and not zombie:
                found.append(int(d))
    return found


def test_process_ignoring_sigterm_is_killed(box, workspace):
    m = ws_mount(workspace)
    marker = f"onboard-term-{uuid.uuid4().hex}"
    r = box.run([box.python, "-c", IGNORES_TERM, at(box, m), marker], mounts=[m], limits=Limits(timeout_s=4))
    assert r.status == "timeout", r
    assert "ignoring TERM" in r.stdout
    assert (workspace / "child.pid").exists(), "the setsid child never started"
    time.sleep(0.5)
    assert _with_marker(marker) == [], "a process of the job survived the sandbox"


def test_local_backend_says_it_is_weaker():
    box = _local()
    assert box.warning and "weaker isolation" in box.warning


def test_workspace_mode_is_untouched(workspace, box):
    before = stat.S_IMODE(workspace.stat().st_mode)
    box.run(["true"], mounts=[ws_mount(workspace)], limits=Limits(timeout_s=30))
    assert stat.S_IMODE(workspace.stat().st_mode) == before


def test_local_job_dies_with_a_killed_caller(workspace):
    """The caller is SIGKILLed mid-run (no finally runs): its sandboxed command must not live on."""
    import subprocess
    import sys

    marker = f"onboard-orphan-{uuid.uuid4().hex}"
    script = (f"import sys; sys.path.insert(0, {str(TESTS.parent)!r})\n"
              "from sandboxes.factory import make_sandbox\nfrom sandboxes.base import Limits, Mount\n"
              "from pathlib import Path\nbox = make_sandbox('local')\n"
              f"box.run([box.python, '-c', 'import time; open(\\'/w/started\\', \\'w\\'); time.sleep(600)', "
              f"{marker!r}], mounts=[Mount(Path({str(workspace)!r}), '/w', read_only=False)], "
              "limits=Limits(timeout_s=600))\n")
    caller = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if (workspace / "started").exists():
            break
        time.sleep(0.1)
    assert (workspace / "started").exists() and _with_marker(marker)
    caller.kill()
    caller.wait()
    for _ in range(50):
        if not _with_marker(marker):
            break
        time.sleep(0.1)
    assert _with_marker(marker) == [], "the sandboxed job outlived its SIGKILLed caller"


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_git_metadata_is_masked(box, workspace, kind):
    """A repository's own .git (dir) or a worktree's gitfile never reaches the command, on any mount."""
    if kind == "dir":
        (workspace / ".git").mkdir()
        (workspace / ".git" / "config").write_text("[core]\n\tfsmonitor = /host/program\n")
    else:
        (workspace / ".git").write_text("gitdir: /host/mirrors/repo.git/worktrees/job\n")
    (workspace / "code.py").write_text("x = 1\n")
    m = Mount(workspace, "/scratch", read_only=True)
    code = ("import os\np = '/scratch/.git'\nprint('listing', os.listdir(p) if os.path.isdir(p) else None)\n"
            "for f in (p, p + '/config'):\n    try:\n        print('READ', repr(open(f).read()))\n"
            "    except OSError as exc:\n        print('refused', type(exc).__name__)\n"
            "print('code', open('/scratch/code.py').read().strip())\n")
    r = box.run(py(box, code), mounts=[m], limits=Limits(timeout_s=30))
    assert r.ok, r
    assert "fsmonitor" not in r.stdout and "gitdir" not in r.stdout and "/host/" not in r.stdout, r.stdout
    assert "code x = 1" in r.stdout
