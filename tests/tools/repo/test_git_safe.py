"""Host-side git with programs planted on the host, as if a sandbox had failed: tools/repo/git_safe.py
must refuse the repository and never run the program (issue 15, part 1)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git
import pytest

from tests.fakes.git_job import mirror_job
from tools.repo.workspace import GIT_ENV, RepoManager, commit_all, diff_against


@pytest.fixture
def job(tmp_path):
    return mirror_job(tmp_path)


@pytest.fixture
def secrets(monkeypatch):
    # What a planted program would steal if it ran: it must not.
    monkeypatch.setenv("ONBOARD_GITHUB_TOKEN", "ghp_planted_test")
    monkeypatch.setenv("ONBOARD_LLM_API_KEY", "sk-planted-test")


def _program(tmp: Path) -> tuple[Path, Path]:
    marker = tmp / "ran"
    prog = tmp / "evil.sh"
    prog.write_text(f"#!/bin/sh\nenv >> {marker}\n")
    prog.chmod(0o755)
    return prog, marker


def _plant(kind: str, job: dict, prog: Path) -> None:
    mirror, ws = job["mirror"], job["ws"]
    if kind == "fsmonitor":
        with open(mirror / "config", "a") as f:
            f.write(f"[core]\n\tfsmonitor = {prog}\n")
    elif kind == "hooks":
        for name in ("post-checkout", "reference-transaction", "pre-commit", "post-commit", "post-index-change"):
            (mirror / "hooks" / name).write_text(f"#!/bin/sh\nexec {prog}\n")
            (mirror / "hooks" / name).chmod(0o755)
    elif kind == "hooks_path":
        alt = job["tmp"] / "myhooks"
        alt.mkdir()
        for name in ("post-checkout", "reference-transaction", "post-index-change"):
            (alt / name).write_text(f"#!/bin/sh\nexec {prog}\n")
            (alt / name).chmod(0o755)
        with open(mirror / "config", "a") as f:
            f.write(f"[core]\n\thooksPath = {alt}\n")
    elif kind == "filter":
        (ws / ".gitattributes").write_text("*.py filter=evil diff=evil\n")
        with open(mirror / "config", "a") as f:
            f.write(f"[filter \"evil\"]\n\tclean = {prog}\n\tsmudge = {prog}\n[diff \"evil\"]\n\ttextconv = {prog}\n")
    elif kind == "include":
        inc = job["tmp"] / "inc.cfg"
        inc.write_text(f"[core]\n\tfsmonitor = {prog}\n")
        with open(mirror / "config", "a") as f:
            f.write(f"[include]\n\tpath = {inc}\n")
    elif kind == "gitfile":
        # The worktree's .git redirected to a repository of the attacker's making.
        fake = job["tmp"] / "fake.git"
        git.Repo.clone_from(str(mirror), fake, mirror=True)
        with open(fake / "config", "a") as f:
            f.write(f"[core]\n\tbare = false\n\tfsmonitor = {prog}\n")
        (ws / ".git").write_text(f"gitdir: {fake}\n")
    (ws / "model.py").write_text("X = 2\n")  # a change, so diff and commit have work to do


PLANTS = ["fsmonitor", "hooks", "hooks_path", "filter", "include", "gitfile"]


@pytest.mark.parametrize("kind", PLANTS)
def test_host_git_never_runs_a_planted_program(kind, job, secrets):
    prog, marker = _program(job["tmp"])
    _plant(kind, job, prog)
    refused = []
    steps = [
        ("diff", lambda: diff_against(job["ws"], job["rev"])),
        ("commit", lambda: commit_all(git.Repo(job["ws"]), "change")),
        ("next mirror", lambda: RepoManager(job["tmp"] / "data").mirror(job["url"])),
        ("next worktree", lambda: job["rm"].worktree(job["mirror"], job["rev"], job["tmp"] / "data" / "work" / "j2")),
        ("reused worktree", lambda: job["rm"].worktree(job["mirror"], job["rev"], job["ws"])),
    ]
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # collected: the program must not have run either way
            refused.append((name, type(exc).__name__, str(exc)))
        assert not marker.exists(), f"{kind}: the planted program ran during {name!r}"
    assert refused, f"{kind}: the tampered repository was used without complaint"
    assert all(t == "UnsafeRepository" and "refusing" in msg for _, t, msg in refused), refused


def test_host_git_environment_disarms_fsmonitor_and_hooks(job):
    """The first layer alone: git started with GIT_ENV runs neither fsmonitor nor hooks, even in a
    repository that nobody checked."""
    prog, marker = _program(job["tmp"])
    _plant("fsmonitor", job, prog)
    _plant("hooks", job, prog)
    env = {**os.environ, **GIT_ENV}
    for cmd in (["status", "--porcelain"], ["add", "-A"], ["diff", "HEAD"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], ["checkout", "-q", "--detach", "HEAD~0"]):
        subprocess.run(["git", "-C", str(job["ws"]), *cmd], env=env, capture_output=True, timeout=60)
        assert not marker.exists(), f"git {cmd[0]} ran the planted program"
