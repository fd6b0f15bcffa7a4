"""A mirror and a job's worktree of it, as RepoManager makes them for every job: the repository shape the
escape and safe-git tests attack."""

from __future__ import annotations

from pathlib import Path

import git

from tools.repo.workspace import RepoManager


def mirror_job(tmp_path: Path) -> dict:
    up = tmp_path / "upstream"
    up.mkdir()
    repo = git.Repo.init(up)
    (up / "model.py").write_text("X = 1\n")
    (up / "conftest.py").write_text("")
    repo.index.add(["model.py", "conftest.py"])
    repo.index.commit("base")
    rm = RepoManager(tmp_path / "data")
    mirror = rm.mirror(str(up))
    rev = rm.resolve(mirror, None)
    ws = rm.worktree(mirror, rev, tmp_path / "data" / "work" / "job1")
    out = tmp_path / "data" / "jobs" / "job1"
    out.mkdir(parents=True)
    out.chmod(0o777)  # as verify_runner opens it to the sandbox's uid
    return {"rm": rm, "url": str(up), "mirror": mirror, "rev": rev, "ws": ws, "out": out, "tmp": tmp_path}
