"""Git operations for replaying a target's history: upstream's change, and a base without it.

A past onboarding is replayed at its parent when the parent still works in today's environment;
otherwise at HEAD with that commit reverted (its registration, tests and docs removed), in a private
clone the bench owns: the source checkout is never written to.
"""

from __future__ import annotations

import os
from pathlib import Path

import git

from tools.repo.git_safe import GIT_ENV, open_gitdir
from tools.repo.workspace import git_reason

# A fixed identity and date: the same revert of the same HEAD is the same commit on every rerun,
# so the thread id (derived from the base revision) and a resumed bench stay stable.
BENCH_ENV = {"GIT_AUTHOR_NAME": "onboard bench", "GIT_AUTHOR_EMAIL": "bench@onboarder.invalid",
             "GIT_COMMITTER_NAME": "onboard bench", "GIT_COMMITTER_EMAIL": "bench@onboarder.invalid",
             "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}


def upstream_diff(mirror: Path, sha: str) -> str:
    """What upstream's commit changed against its first parent."""
    return open_gitdir(mirror).git.diff(f"{sha}^", sha, "--no-color", "--no-ext-diff", "--no-textconv")


def head(mirror: Path) -> str:
    return open_gitdir(mirror).git.rev_parse("HEAD")


def revert_tag(sha: str) -> str:
    return f"onboard-bench/revert-{sha[:12]}"


def reverted_head(clone: Path, source: Path, head_rev: str, sha: str) -> tuple[str | None, str]:
    """A tag in `clone` (a private clone of `source`) naming HEAD with `sha` reverted.

    Returns (tag, "") or (None, why the revert does not apply). Idempotent: an existing tag is reused.
    """
    env = {**os.environ, **GIT_ENV, **BENCH_ENV}
    if not (clone / ".git").exists():
        clone.parent.mkdir(parents=True, exist_ok=True)
        git.Repo.clone_from(str(source), str(clone), no_checkout=True, env=env)
    repo = git.Repo(clone)
    tag = revert_tag(sha)
    try:
        repo.git.rev_parse("--verify", "--quiet", f"refs/tags/{tag}", env=env)
        return tag, ""
    except git.GitCommandError:
        pass
    try:
        repo.git.fetch("-q", str(source), head_rev, env=env)
        repo.git.checkout("-q", "--detach", "-f", head_rev, env=env)
        repo.git.revert("--no-edit", sha, env=env)
    except git.GitCommandError as exc:
        reason = git_reason(exc)
        try:
            repo.git.revert("--abort", env=env)
        except git.GitCommandError:
            pass
        return None, f"reverting {sha[:12]} on HEAD {head_rev[:12]} does not apply: {reason}"[:300]
    repo.git.tag(tag, env=env)
    return tag, ""


def stripped_head(clone: Path, source: Path, head_rev: str, sha: str, strip) -> tuple[str | None, str]:
    """A tag in `clone` naming HEAD with the commit's model taken out by `strip(worktree) -> note`.

    `strip` is the target's: it knows which lines register, test and document the model. Returns
    (tag, note) or (None, why). Idempotent: an existing tag is reused (its note is not kept).
    """
    env = {**os.environ, **GIT_ENV, **BENCH_ENV}
    if not (clone / ".git").exists():
        clone.parent.mkdir(parents=True, exist_ok=True)
        git.Repo.clone_from(str(source), str(clone), no_checkout=True, env=env)
    repo = git.Repo(clone)
    tag = f"onboard-bench/without-{sha[:12]}"
    try:
        repo.git.rev_parse("--verify", "--quiet", f"refs/tags/{tag}", env=env)
        return tag, "HEAD without the model (made by an earlier run)"
    except git.GitCommandError:
        pass
    repo.git.fetch("-q", str(source), head_rev, env=env)
    repo.git.checkout("-q", "--detach", "-f", head_rev, env=env)
    repo.git.clean("-fdq", env=env)
    note = strip(clone)
    if note is None:  # the target cannot take one model out: leave the clone as it was
        repo.git.checkout("-q", "--detach", "-f", head_rev, env=env)
        repo.git.clean("-fdq", env=env)
        return None, "the target cannot take one model out of HEAD"
    if not repo.is_dirty(untracked_files=True):
        return None, f"nothing of {sha[:12]}'s model is left at HEAD {head_rev[:12]} to take out"
    repo.git.add("-A", env=env)
    repo.git.commit("-q", "-m", f"onboard bench: HEAD without the model of {sha[:12]}", env=env)
    repo.git.tag(tag, env=env)
    return tag, note


def unapply_added_lines(worktree: Path, mirror: Path, sha: str, prefixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Take out, file by file, the lines `sha` added under `prefixes` wherever they still are at this tree
    (a zero-context reverse patch: later edits around them do not matter). Returns (done, kept) paths:
    a file whose lines moved or changed since is kept as it is."""
    diff = open_gitdir(mirror).git.diff("-U0", f"{sha}^", sha, "--no-color", "--no-ext-diff", "--", *prefixes)
    done, kept = [], []
    if not diff.strip():
        return done, kept
    patch = worktree.parent / f"{worktree.name}.unapply.patch"
    patch.write_text(diff + "\n")
    repo = git.Repo(worktree)
    paths = sorted({ln[6:] for ln in diff.splitlines() if ln.startswith("+++ b/")})
    try:
        for rel in paths:
            try:
                repo.git.apply("-R", "--unidiff-zero", f"--include={rel}", str(patch),
                               env={**os.environ, **GIT_ENV})
                done.append(rel)
            except git.GitCommandError:
                kept.append(rel)
    finally:
        patch.unlink(missing_ok=True)
    return done, kept


def apply_diff(worktree: Path, diff: str) -> str | None:
    """Apply `diff` to a clean worktree; returns why it did not apply, or None."""
    if not diff.strip():
        return None
    patch = worktree.parent / f"{worktree.name}.patch"
    patch.write_text(diff if diff.endswith("\n") else diff + "\n")
    try:
        git.Repo(worktree).git.apply("--whitespace=nowarn", str(patch), env={**os.environ, **GIT_ENV})
        return None
    except git.GitCommandError as exc:
        return git_reason(exc)
    finally:
        patch.unlink(missing_ok=True)
