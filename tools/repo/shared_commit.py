"""Shared commits: a change several PRs need, committed once with an id that depends on its content alone.

A target that adds support code every PR of it relies on (optimum-intel: the tiny test-model builder)
commits that code under the PR's own change, with fixed author, date and message, on the upstream
revision. Every PR built on that revision then carries the very same commit: merging a second PR after
the first brings only its own commit, and its own diff applies on top of the first. The commit message
carries a `Onboarder-Shared:` trailer, so publishing squashes the PR's change onto the shared commit
instead of onto the upstream revision.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tools.repo.git_safe import GIT_ENV, open_worktree
from tools.repo.workspace import BOT

TRAILER = "Onboarder-Shared:"


def _env(date: str) -> dict:
    return {**GIT_ENV, "GIT_AUTHOR_NAME": BOT[0], "GIT_AUTHOR_EMAIL": BOT[1], "GIT_COMMITTER_NAME": BOT[0],
            "GIT_COMMITTER_EMAIL": BOT[1], "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def tracked(worktree: Path, rel: str, rev: str = "HEAD") -> bool:
    repo = open_worktree(worktree)
    return bool(repo.git.ls_tree("--name-only", rev, "--", rel).strip())


def commit_under_head(worktree: Path, files: dict[str, str], message: str, date: str) -> str:
    """Commit `files` (path -> full text) on top of HEAD without touching the worktree or its other
    changes, and move HEAD there (the index follows; the worktree's own edits stay uncommitted)."""
    if TRAILER not in message:
        raise ValueError(f"a shared commit's message needs a {TRAILER} trailer")
    repo = open_worktree(worktree)
    with tempfile.TemporaryDirectory(prefix="onboard-shared-") as tmp:
        env = {**GIT_ENV, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        repo.git.read_tree("HEAD", env=env)
        for n, (rel, text) in enumerate(files.items()):
            blob_file = Path(tmp, f"blob{n}")
            blob_file.write_bytes(text.encode("utf-8"))
            blob = repo.git.hash_object("-w", "--path", rel, str(blob_file), env=env)
            repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
        tree = repo.git.write_tree(env=env)
    sha = repo.git.commit_tree(tree, "-p", "HEAD", "-m", message, env=_env(date))
    repo.git.reset("-q", "--soft", sha)
    return sha


def change_parent(worktree: Path, base_rev: str) -> str:
    """What a PR's own commit goes on: the newest shared commit between `base_rev` and HEAD, else `base_rev`."""
    repo = open_worktree(worktree)
    log = repo.git.log("--first-parent", "--format=%H%x00%B%x01", f"{base_rev}..HEAD")
    for entry in log.split("\x01"):
        sha, _, message = entry.strip().partition("\x00")
        if sha and any(line.startswith(TRAILER) for line in message.splitlines()):
            return sha
    return base_rev


def shared_under_head(worktree: Path, depth: int = 2) -> str | None:
    """The shared commit among HEAD and its `depth - 1` first parents (HEAD itself before publishing,
    its parent after), or None."""
    repo = open_worktree(worktree)
    log = repo.git.log(f"-{depth}", "--first-parent", "--format=%H%x00%B%x01", "HEAD")
    for entry in log.split("\x01"):
        sha, _, message = entry.strip().partition("\x00")
        if sha and any(line.startswith(TRAILER) for line in message.splitlines()):
            return sha
    return None
