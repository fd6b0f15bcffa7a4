"""The CLI's contract for bad input, as test helpers: one line on stderr, exit 2, no traceback, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import git

from tools.repo.workspace import commit_all

ROOT = Path(__file__).resolve().parents[2]
OPTIMUM_FIXTURE = ROOT / "tests" / "fixtures" / "optimum_intel"


def target_repo(dest: Path) -> Path:
    """A git checkout that looks like optimum-intel (the fixture), on branch main."""
    shutil.copytree(OPTIMUM_FIXTURE, dest)
    commit_all(git.Repo.init(dest, initial_branch="main"), "fixture")
    return dest


def other_repo(dest: Path) -> Path:
    """A git repository of some other project."""
    dest.mkdir(parents=True)
    (dest / "README.md").write_text("not optimum-intel\n")
    commit_all(git.Repo.init(dest, initial_branch="main"), "other")
    return dest


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its kind, size and mtime: equal snapshots mean nothing was written."""
    if not os.path.lexists(root):
        return {}
    st = os.lstat(root)
    out = {".": (st.st_mode, 0 if os.path.isdir(root) else st.st_size, st.st_mtime_ns)}
    if not os.path.isdir(root) or os.path.islink(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            out[os.path.relpath(p, root)] = (s.st_mode, s.st_size, s.st_mtime_ns)
    return out


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def refused(self) -> str:
        """'' when this is a contract refusal, else what is wrong with it."""
        problems = []
        lines = self.stderr.splitlines()
        if self.code != 2:
            problems.append(f"exit {self.code}")
        if len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines")
        if "Traceback" in self.stderr + self.stdout:
            problems.append("a traceback")
        if self.exception is not None and not isinstance(self.exception, SystemExit):
            problems.append(f"raised {type(self.exception).__name__}: {self.exception}")
        if lines and not lines[0].startswith("error: "):
            problems.append("no 'error:' line")
        return ", ".join(problems)


def clean_env(monkeypatch) -> None:
    """No ONBOARD_* from the machine; no Hub traffic (a random org/name must not wait on the network)."""
    for key in [k for k in os.environ if k.startswith("ONBOARD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def invoke(args: list[str]) -> Outcome:
    """The CLI in this process (typer's runner keeps stdout and stderr apart)."""
    from typer.testing import CliRunner

    from agent.cli.main import app

    res = CliRunner().invoke(app, args)
    return Outcome(res.exit_code, res.stdout, res.stderr, res.exception)


def invoke_process(args: list[str], timeout: float = 120) -> Outcome:
    """The CLI as a user runs it: a fresh interpreter through the console-script entry point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    code = "import sys; sys.argv[0] = 'onboard'; from agent.cli.main import main; main()"
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                         timeout=timeout, cwd=ROOT)
    return Outcome(res.returncode, res.stdout, res.stderr)
