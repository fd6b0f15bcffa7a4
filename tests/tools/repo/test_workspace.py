"""Mirrors, worktrees and the source-distribution fallback on real git repositories."""

from __future__ import annotations

import shutil
import threading

import git
import pytest

from tools.errors import UserError
from tools.repo.workspace import RepoManager, RepoUnavailable, commit_all, diff_against, normalise_repo


@pytest.fixture
def upstream(tmp_path):
    path = tmp_path / "upstream"
    repo = git.Repo.init(path, initial_branch="main")
    (path / "a.py").write_text("A = 1\n")
    commit_all(repo, "first")
    return path


def test_mirror_worktree_and_reset(upstream, tmp_path):
    rm = RepoManager(tmp_path / "data")
    mirror = rm.mirror(str(upstream))
    rev = rm.resolve(mirror, None)
    wt = rm.worktree(mirror, rev, tmp_path / "job" / "ws")
    assert (wt / "a.py").read_text() == "A = 1\n"
    (wt / "a.py").write_text("A = 2\n")
    (wt / "new.py").write_text("B = 1\n")
    assert "+A = 2" in diff_against(wt, rev) and "new.py" in diff_against(wt, rev)
    rm.reset(wt, rev)
    assert (wt / "a.py").read_text() == "A = 1\n" and not (wt / "new.py").exists()
    # the same destination again is reused, not recreated
    assert rm.worktree(mirror, rev, tmp_path / "job" / "ws") == wt


def test_corrupt_mirror_is_recloned(upstream, tmp_path):
    rm = RepoManager(tmp_path / "data")
    mirror = rm.mirror(str(upstream))
    shutil.rmtree(mirror / "refs")
    (mirror / "HEAD").write_text("garbage")
    mirror2 = rm.mirror(str(upstream))
    assert rm.resolve(mirror2, None)
    assert len(rm.notes) == 1 and "was corrupt" in rm.notes[0] and "re-cloned" in rm.notes[0]


def test_unreachable_and_unknown_ref(tmp_path, upstream):
    rm = RepoManager(tmp_path / "data", timeout_s=20)
    with pytest.raises(RepoUnavailable, match="cannot reach"):
        rm.mirror("https://127.0.0.1:9/nothing.git")
    mirror = rm.mirror(str(upstream))
    with pytest.raises(UserError, match="unknown ref"):
        rm.resolve(mirror, "no-such-branch")
    with pytest.raises(UserError, match="does not exist"):
        normalise_repo(str(tmp_path / "missing"))


def test_concurrent_jobs_share_one_mirror(upstream, tmp_path):
    rm = RepoManager(tmp_path / "data")
    results, errors = [], []

    def job(i):
        try:
            m = rm.mirror(str(upstream))
            results.append(rm.worktree(m, rm.resolve(m, None), tmp_path / f"wt{i}"))
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and len(results) == 4
    assert len(list((tmp_path / "data" / "mirrors").glob("*.git"))) == 1
