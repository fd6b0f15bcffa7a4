"""The escape chain of issue 15, part 1, run as production runs it: the sandbox the factory builds (as
root here), secrets in the parent's environment, the workspace a worktree of a shared mirror.

The code under verification tries everything at once: read the secrets (its environment, every
/proc/*/environ), /etc/shadow and the workspace's `.git`; plant a program as `core.fsmonitor` and as
hooks in the mirror it points at; write to /root, the host's /tmp, the workspace and the mirror; reach a
host unix socket (path and abstract); signal a host process. Then the host does what it does after every
verification (diff, commit, the next job's worktree and mirror): the planted program must never run.

The host-side git layer alone (plants made on the host, as if a sandbox had failed) is tested in
tests/tools/repo/test_git_safe.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import git
import pytest

from sandboxes.base import Mount
from sandboxes.factory import engine_status
from sandboxes.images import DEFAULT_IMAGE
from tests.fakes.git_job import mirror_job
from tools.repo.workspace import RepoManager, commit_all, diff_against

TOKEN = "ghp_escape_" + uuid.uuid4().hex
API_KEY = "sk-escape-" + uuid.uuid4().hex
IMAGE = os.environ.get("ONBOARD_SANDBOX_TEST_IMAGE", DEFAULT_IMAGE)
ROOT = Path(__file__).resolve().parents[2]

PAYLOAD = r"""
import glob, json, os, signal, socket, sys
a = json.loads(sys.argv[1])
res = {}
def attempt(name, fn):
    try:
        res[name] = ["ok", str(fn())[:300]]
    except BaseException as exc:
        res[name] = ["refused", type(exc).__name__]
res["env"] = "\n".join(f"{k}={v}" for k, v in os.environ.items())
blobs = []
for p in sorted(set(glob.glob("/proc/[0-9]*/environ") + ["/proc/1/environ", f"/proc/{os.getppid()}/environ"])):
    try:
        blobs.append(open(p, "rb").read().decode("latin1"))
    except OSError:
        pass
res["environs"] = "\n".join(blobs)
attempt("shadow", lambda: open("/etc/shadow").read())
attempt("gitfile", lambda: open(os.path.join(a["ws"], ".git")).read())
gitdirs = [a["mirror"]]
try:
    entry = open(os.path.join(a["ws"], ".git")).read().split("gitdir:", 1)[1].strip()
    gitdirs.append(os.path.normpath(os.path.join(entry, "..", "..")))
except Exception:
    pass
# The program goes where the host can run it: the output directory, which it reads back.
open(os.path.join(a["out"], "evil.sh"), "w").write("#!/bin/sh\nenv > %s/PWNED-$$\n" % a["host_out"])
os.chmod(os.path.join(a["out"], "evil.sh"), 0o755)
program = os.path.join(a["host_out"], "evil.sh")
script = "#!/bin/sh\nexec %s\n" % program
def plant_config(gd):
    with open(os.path.join(gd, "config"), "a") as f:
        f.write("[core]\n\tfsmonitor = %s\n\thooksPath = %s\n" % (program, os.path.join(gd, "hooks")))
    return "planted"
def plant_hook(gd, name):
    p = os.path.join(gd, "hooks", name)
    open(p, "w").write(script)
    os.chmod(p, 0o755)
    return "planted"
for i, gd in enumerate(gitdirs):
    attempt(f"config{i}", lambda gd=gd: plant_config(gd))
    for name in ("post-checkout", "reference-transaction", "pre-commit", "post-commit", "post-index-change"):
        attempt(f"hook{i}:{name}", lambda gd=gd, name=name: plant_hook(gd, name))
for key in ("root", "host_tmp", "ws_file", "mirror_file"):
    attempt("write:" + key, lambda key=key: open(a[key], "w").write("x"))
def connect(addr):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(addr)
    s.sendall(b"hello from the sandbox")
    return "connected"
attempt("socket", lambda: connect(a["sock"]))
attempt("abstract", lambda: connect("\0" + a["abstract"]))
attempt("kill_victim", lambda: os.kill(a["victim"], signal.SIGTERM))
attempt("signal_caller", lambda: os.kill(a["caller"], 0))
print(json.dumps(res))
"""


def _docker_or_skip():
    client, why = engine_status(IMAGE)
    if client is None:
        pytest.skip(f"docker backend not testable here: {why}")


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request):
    if request.param == "docker":
        _docker_or_skip()
    return request.param


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("ONBOARD_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("ONBOARD_LLM_API_KEY", API_KEY)
    return (TOKEN, API_KEY)


@pytest.fixture
def job(tmp_path):
    return mirror_job(tmp_path)


def _tree(root: Path, skip: str | None = None) -> dict[str, str]:
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if skip and (rel == skip or rel.startswith(skip + "/")):
            continue
        if p.is_symlink():
            found[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def _mirror_state(mirror: Path) -> dict:
    return {"config": (mirror / "config").read_bytes(), "hooks": _tree(mirror / "hooks"),
            "worktrees": _tree(mirror / "worktrees"), "top": sorted(p.name for p in mirror.iterdir())}


class _Listener:
    """A host unix socket server (path or abstract) that records whoever connects."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(address)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.seen.append(conn.recv(100) or b"<connected>")
            except OSError:
                self.seen.append(b"<connected>")
            conn.close()

    def close(self):
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


# The host side of a verification in a process of its own, started with the secrets in its environment
# as the service is: /proc/<pid>/environ shows a process's initial environment, not later setenv calls.
HOST_SIDE = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from sandboxes.base import Limits, Mount
spec = json.loads(sys.argv[2])
if spec["backend"] == "docker":
    from sandboxes.docker import DockerSandbox
    box = DockerSandbox(spec["image"], python=spec["python"])
else:
    from sandboxes.factory import make_sandbox
    box = make_sandbox("local")  # what ONBOARD_SANDBOX=local (the default) builds
m_ws = Mount(Path(spec["ws"]), "/workspace", read_only=True)  # the mounts verify_runner gives a job
m_out = Mount(Path(spec["out"]), "/out", read_only=False)
args = dict(spec["args"], ws=box.inside(m_ws), out=box.inside(m_out), ws_file=box.inside(m_ws) + "/planted.txt")
r = box.run([box.python, "-c", spec["payload"], json.dumps(args)], mounts=[m_ws, m_out], workdir=m_out,
            limits=Limits(timeout_s=120))
print(json.dumps({"status": r.status, "reason": r.reason, "stdout": r.stdout, "stderr": r.stderr}))
"""


def test_code_under_verification_cannot_escape_or_plant(backend, secrets, job):
    ws, mirror, out = job["ws"], job["mirror"], job["out"]
    run_id = uuid.uuid4().hex[:12]
    host_tmp = Path(f"/tmp/onboard-escape-{run_id}")
    root_marker = Path(f"/root/onboard-escape-{run_id}") if os.geteuid() == 0 else Path.home() / f"escape-{run_id}"
    sock_path = str(job["tmp"] / "host.sock")
    path_srv, abstract_srv = _Listener(sock_path), _Listener(f"\0onboard-escape-{run_id}")
    victim = subprocess.Popen(["sleep", "120"])
    ws_before, mirror_before = _tree(ws, skip=".git"), _mirror_state(mirror)
    spec = {"backend": backend, "image": IMAGE, "python": os.environ.get("ONBOARD_SANDBOX_TEST_PYTHON", "python"),
            "ws": str(ws.resolve()), "out": str(out.resolve()), "payload": PAYLOAD,
            "args": {"host_out": str(out.resolve()), "mirror": str(mirror), "root": str(root_marker),
                     "host_tmp": str(host_tmp), "mirror_file": str(mirror / "planted"), "sock": sock_path,
                     "abstract": f"onboard-escape-{run_id}", "victim": victim.pid, "caller": os.getpid()}}
    problems = []
    try:
        host = subprocess.run([sys.executable, "-c", HOST_SIDE, str(ROOT), json.dumps(spec)], env=dict(os.environ),
                              capture_output=True, text=True, timeout=300)
        victim_alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
        path_srv.close()
        abstract_srv.close()
    try:
        assert host.returncode == 0, host.stderr[-2000:]
        r = json.loads(host.stdout.strip().splitlines()[-1])
        assert r["status"] == "ok", (r["status"], r["reason"], r["stderr"][-2000:])
        res = json.loads(r["stdout"].strip().splitlines()[-1])
        # Secrets: not in its environment, nor in any process environment it can read.
        for secret in secrets:
            if secret in res["env"]:
                problems.append("a secret is in the job's environment")
            if secret in res["environs"]:
                problems.append("a secret is readable in a /proc/<pid>/environ")
        if res["shadow"][0] != "refused":
            problems.append("/etc/shadow is readable")
        if "gitdir" in res["gitfile"][1]:
            problems.append(f"the job read the workspace's git metadata: {res['gitfile'][1]!r}")
        # Nothing planted, nothing written outside the output directory.
        if _mirror_state(mirror) != mirror_before:
            problems.append("the mirror changed: " + ", ".join(k for k, v in res.items()
                                                              if k[:4] in ("conf", "hook") and v[0] == "ok"))
        if _tree(ws, skip=".git") != ws_before:
            problems.append("the workspace changed")
        for marker in (root_marker, host_tmp, mirror / "planted"):
            if marker.exists():
                problems.append(f"wrote {marker}")
        # No host socket reached, no host process signalled.
        if path_srv.seen or abstract_srv.seen or res["socket"][0] == "ok" or res["abstract"][0] == "ok":
            problems.append(f"reached a host unix socket: {path_srv.seen + abstract_srv.seen}")
        if not victim_alive or res["kill_victim"][0] == "ok" or res["signal_caller"][0] == "ok":
            problems.append("signalled a host process")
        # The host's usual git after a verification, then the next job on the same mirror.
        for step in (lambda: diff_against(ws, job["rev"]),
                     lambda: commit_all(git.Repo(ws), "the verified change"),
                     lambda: RepoManager(job["tmp"] / "data").mirror(job["url"]),
                     lambda: job["rm"].worktree(mirror, job["rev"], job["tmp"] / "data" / "work" / "job2"),
                     lambda: job["rm"].worktree(mirror, job["rev"], ws)):  # a resumed job reuses its worktree
            try:
                step()
            except Exception as exc:
                problems.append(f"host git failed: {type(exc).__name__}: {str(exc)[:200]}")
        pwned = sorted(p for p in out.iterdir() if p.name.startswith("PWNED"))
        if pwned:
            leaked = any(s in p.read_text() for p in pwned for s in secrets)
            problems.append(f"the planted program ran on the host {len(pwned)} times"
                            + (", with the secrets in its environment" if leaked else ""))
        assert problems == [], "escapes:\n" + "\n".join(problems)
    finally:
        root_marker.unlink(missing_ok=True)
        host_tmp.unlink(missing_ok=True)


# --- the local backend fails closed -------------------------------------------------------------------

def test_local_backend_refuses_to_run_without_bubblewrap(monkeypatch, tmp_path):
    from sandboxes.base import SandboxUnavailable
    from sandboxes.factory import make_sandbox

    monkeypatch.setenv("PATH", str(tmp_path))  # neither bwrap nor setpriv (nor unshare) to be found
    with pytest.raises(SandboxUnavailable, match="bubblewrap") as exc:
        make_sandbox("local")
    assert "\n" not in str(exc.value) and "apt-get install bubblewrap" in str(exc.value)


def test_local_backend_refuses_where_namespaces_are_refused(monkeypatch, tmp_path):
    from tools.errors import EnvironmentProblem
    from agent.graph.run import make_sandbox
    from tests.fakes.scripted_target import ScriptedTarget
    from agent.settings import Settings

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'bubblewrap 0.8.0'; exit 0; }\n"
                    "echo 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/sbin:/usr/bin:/sbin:/bin")
    with pytest.raises(EnvironmentProblem, match="No permissions to create a new namespace") as exc:
        make_sandbox(Settings(data_dir=tmp_path / "data", sandbox="local"), ScriptedTarget().env)
    assert "\n" not in str(exc.value)


def test_local_mount_cannot_hide_the_interpreter(tmp_path):
    from sandboxes.base import UnsafeMount
    from sandboxes.factory import make_sandbox

    box = make_sandbox("local")
    top = "/" + Path(box.python).parts[1]  # e.g. /work or /root: where the interpreter lives
    with pytest.raises(UnsafeMount, match="would hide"):
        box.run(["true"], mounts=[Mount(tmp_path, top)])


# --- the output directory: the host never writes through what a job left there ------------------------

PLANT_LINKS = r"""
import os, sys
for name in ("job-parity.log", "job-tests.log", "spec-tests.json", "change.diff", "verification.json",
             "tsc.log", "tsconfig.fib.json", "summary.md"):
    try:
        os.symlink(sys.argv[2], os.path.join(os.getcwd(), name))
    except FileExistsError:
        pass
print("planted")
"""


def test_links_left_in_the_output_directory_are_never_written_through(tmp_path):
    from sandboxes.factory import make_sandbox
    from tools.targets.base import JobContext
    from tools.targets.sandbox_job import run_job

    victim = tmp_path / "victim"  # stands for /root/.bashrc: a file the job names, we must not write
    victim.write_text("host file\n")
    job = tmp_path / "job" / "plant.py"
    job.parent.mkdir()
    job.write_text(PLANT_LINKS.replace("sys.argv[2]", repr(str(victim))))
    (tmp_path / "ws").mkdir()
    (tmp_path / "tiny").mkdir()
    ctx = JobContext(model_type="x", tiny_dir=tmp_path / "tiny", work_dir=tmp_path / "out")
    box = make_sandbox("local")
    for phase in ("parity", "tests"):  # the second phase's spec is written where the first left a link
        run_job(box, job, tmp_path / "ws", ctx, {"phase": phase}, 60)
    assert victim.read_text() == "host file\n"
    assert "planted" in (ctx.work_dir / "job-tests.log").read_text()
    assert not (ctx.work_dir / "job-tests.log").is_symlink()
