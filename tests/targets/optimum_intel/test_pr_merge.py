"""Two onboarding PRs made on the same upstream revision merge into one branch without conflicts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import git
import pytest

from tests import TESTS
from tests.targets.optimum_intel.test_patch import spec
from tools.forge.local import LocalForge
from tools.targets.optimum_intel import fixture
from tools.targets.optimum_intel.patch import write_patch
from tools.targets.optimum_intel.target import _commit_shared

FIXTURES = TESTS / "fixtures" / "optimum_intel"
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **ENV})


@pytest.fixture
def upstream(tmp_path) -> tuple[Path, str]:
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURES, ws, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    repo = git.Repo.init(ws)
    repo.git.add("-A")
    repo.git.commit("-qm", "upstream", env=ENV)
    return ws, repo.head.commit.hexsha


def _publish(ws: Path, base: str, model_type: str, forge: LocalForge):
    """What implement → verify → publish do to the workspace: patch (twice: before and after the
    measurements), shared commit, the PR's own commit, push."""
    git.Repo(ws).git.checkout("-q", "--detach", "-f", base)
    git.Repo(ws).git.clean("-fdq")
    for measured in (False, True):
        write_patch(ws, spec(model_type, expected_int8={"model": 32} if measured else None, measured=measured))
        _commit_shared(ws)
    return forge.publish(worktree=ws, base_rev=base, branch=f"onboard/optimum-intel/{model_type}",
                         title=f"[OpenVINO] Add support for {model_type}", body="", target="optimum-intel",
                         model_type=model_type, thread_id="t", verification={})


def test_the_second_pr_merges_and_applies_onto_the_first(upstream, tmp_path):
    ws, base = upstream
    forge = LocalForge(tmp_path / "data")
    first, second = _publish(ws, base, "cwm", forge), _publish(ws, base, "seed_oss", forge)
    clone = tmp_path / "clone"
    assert _git(tmp_path, "clone", "-q", first.remote, str(clone)).returncode == 0
    _git(clone, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    a, b = "origin/onboard/optimum-intel/cwm", "origin/onboard/optimum-intel/seed_oss"
    # each PR: the shared commit (the same one), then its own
    shared = {_git(clone, "rev-parse", f"{ref}~1").stdout for ref in (a, b)}
    assert len(shared) == 1 and _git(clone, "rev-parse", f"{a}~2").stdout.strip() == base
    assert fixture.HELPER in _git(clone, "show", "--name-only", "--format=", f"{a}~1").stdout
    own = _git(clone, "show", "--name-only", "--format=", b).stdout.split()
    assert fixture.HELPER not in own and fixture.config_path("seed_oss") in own

    _git(clone, "checkout", "-q", "-b", "both", a)
    merged = _git(clone, "merge", "--no-edit", b)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    text = (clone / fixture.UTILS_TESTS).read_text()
    assert '"cwm": "org/tiny-random-cwm"' in text and '"seed_oss": "org/tiny-random-seed_oss"' in text
    assert text.count(fixture.HOOK_IMPORT) == 1

    _git(clone, "checkout", "-q", "-b", "applied", a)
    patch = _git(clone, "diff", f"{b}~1", b).stdout
    # the miniature's tables are a few lines long, so the patch's context lines meet the first PR's
    # entries: --3way resolves that from the blobs, as it would for a maintainer applying the patch
    applied = subprocess.run(["git", "apply", "--3way", "--index", "-"], cwd=clone, input=patch,
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    assert _git(clone, "diff", "--cached", "--quiet", "both").returncode == 0  # the same tree as the merge


def test_republishing_keeps_the_shared_commit_under_the_change(upstream, tmp_path):
    ws, base = upstream
    forge = LocalForge(tmp_path / "data")
    first = _publish(ws, base, "cwm", forge)
    again = forge.publish(worktree=ws, base_rev=base, branch="onboard/optimum-intel/cwm", title="t", body="",
                          target="optimum-intel", model_type="cwm", thread_id="t", verification={})
    repo = git.Repo(ws)
    assert repo.git.rev_parse(f"{again.head_rev}~1") == repo.git.rev_parse(f"{first.head_rev}~1")
    assert repo.git.rev_parse(f"{again.head_rev}~2") == base
