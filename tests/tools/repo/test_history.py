"""HEAD minus one commit in a private clone, and a change re-applied to its base."""

from __future__ import annotations

import git

from tools.repo.history import apply_diff, reverted_head, upstream_diff
from tools.repo.workspace import commit_all


def _repo(root):
    repo = git.Repo.init(root, initial_branch="main")
    (root / "reg.py").write_text("A = 1\n")
    commit_all(repo, "base")
    (root / "reg.py").write_text("A = 1\nB = 2\n")
    (root / "test_b.py").write_text("def test_b():\n    pass\n")
    commit_all(repo, "Add b")
    added = repo.head.commit.hexsha
    (root / "other.py").write_text("C = 3\n")
    commit_all(repo, "later")
    return repo, added


def test_reverted_head_drops_only_that_commit_and_is_stable(tmp_path):
    repo, added = _repo(tmp_path / "up")
    head = repo.head.commit.hexsha
    tag, why = reverted_head(tmp_path / "clone", tmp_path / "up", head, added)
    assert why == "" and tag.endswith(added[:12])
    clone = git.Repo(tmp_path / "clone")
    assert clone.git.show(f"{tag}:reg.py") == "A = 1"
    assert clone.git.show(f"{tag}:other.py") == "C = 3"  # the later commit is kept
    assert "test_b.py" not in clone.git.ls_tree("--name-only", tag).split()
    again, _ = reverted_head(tmp_path / "clone", tmp_path / "up", head, added)
    assert clone.git.rev_parse(again) == clone.git.rev_parse(tag)
    assert repo.head.commit.hexsha == head and not repo.is_dirty()  # the source is never written


def test_revert_that_conflicts_is_a_reason_not_an_exception(tmp_path):
    repo, added = _repo(tmp_path / "up")
    (tmp_path / "up" / "reg.py").write_text("A = 1\nB = 20\n")  # HEAD rewrote the line the commit added
    commit_all(repo, "rewrite b")
    tag, why = reverted_head(tmp_path / "clone", tmp_path / "up", repo.head.commit.hexsha, added)
    assert tag is None and "does not apply" in why
    clone = git.Repo(tmp_path / "clone")
    assert not clone.is_dirty()  # the failed revert was aborted


def test_apply_diff_replays_a_change_on_its_base(tmp_path):
    repo, added = _repo(tmp_path / "up")
    diff = upstream_diff(tmp_path / "up", added)
    work = tmp_path / "work"
    git.Repo.clone_from(str(tmp_path / "up"), str(work)).git.checkout("-q", f"{added}^")
    assert apply_diff(work, diff) is None
    assert (work / "reg.py").read_text() == "A = 1\nB = 2\n" and (work / "test_b.py").exists()
    assert apply_diff(work, diff) is not None  # applied twice: refused with git's reason
