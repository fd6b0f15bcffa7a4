"""LocalForge: a real branch in a local bare remote, and an upserted record."""

from __future__ import annotations

import os

import git

from tools.forge.local import LocalForge, branch_name
from tools.repo.workspace import RepoManager, commit_all


def test_publish_twice_updates_one_record(tmp_path):
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "f.txt").write_text("base\n")
    base = commit_all(repo, "base")
    rm = RepoManager(tmp_path / "cache")
    wt = rm.worktree(rm.mirror(str(up)), base, tmp_path / "ws")
    (wt / "f.txt").write_text("base\nchanged\n")
    forge = LocalForge(tmp_path / "data")
    kw = dict(worktree=wt, base_rev=base, branch=branch_name("t", "m"), title="Add m", body="body",
              target="t", model_type="m", thread_id="tid", verification={"export": "passed"})
    first = forge.publish(**kw)
    second = forge.publish(**kw)  # a resumed publish
    assert len(forge.records()) == 1
    assert second.revision == 2 and second.created_at == first.created_at
    remote = git.Repo(first.remote)
    head = remote.commit("refs/heads/onboard/t/m")
    assert [p.hexsha for p in head.parents] == [base]  # one commit on top of the base, not two
    assert "+changed" in open(second.diff_path).read()


def test_the_remote_starts_with_upstream_history_so_a_push_sends_only_the_change(tmp_path):
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    for i in range(30):  # a history the first push would otherwise have to send whole
        (up / f"f{i}.txt").write_text(f"{i}\n" * 200)
        base = commit_all(repo, f"c{i}")
    rm = RepoManager(tmp_path / "cache")
    wt = rm.worktree(rm.mirror(str(up)), base, tmp_path / "ws")
    (wt / "new.txt").write_text("the change\n")
    rec = LocalForge(tmp_path / "data").publish(
        worktree=wt, base_rev=base, branch=branch_name("t", "m"), title="Add m", body="b", target="t",
        model_type="m", thread_id="tid", verification={})
    remote = git.Repo(rec.remote)
    assert remote.commit("refs/heads/onboard/t/m").parents[0].hexsha == base
    assert remote.commit("main").hexsha == base  # upstream's branch, as a fork has it
    assert not remote.remotes, "the seeded remote must not keep a path to this machine's mirror"
    # upstream's objects are the mirror's own files, hard-linked, not objects the push packed and sent
    loose = rec.remote + f"/objects/{base[:2]}/{base[2:]}"
    assert os.stat(loose).st_nlink >= 2
