"""The Definition dataset a change is measured against, and the Definition files the change itself writes.

The two never mix: the dataset comes from committed revisions only, the change from the working tree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tools.repo.git_safe import check_worktree
from tools.repo.workspace import env_without_git_prompts

DEFS_DIR = "flashinfer_trace/definitions"


def load_dataset(workspace: Path, explicit: str | None) -> tuple[dict[str, dict], str]:
    """(name -> Definition, where it came from): --dataset PATH, else the workspace's committed tree or its
    history (the last revision that still had the definitions), else none.

    Committed revisions only: files this change writes must never count as the dataset. The upstream Hub
    dataset is not tried: it needs the network, and a run must not depend on it.
    """
    if explicit:
        root = Path(explicit)
        found = {p.stem: json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}
        return {k: v for k, v in found.items() if "axes" in v}, f"dataset directory {root}"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(workspace), *args], capture_output=True, text=True,
                              timeout=60, check=True, env=env_without_git_prompts()).stdout

    if (workspace / ".git").exists():
        check_worktree(workspace)

    try:
        rev = "HEAD"
        files = git("ls-tree", "-r", "--name-only", rev, DEFS_DIR).split()
        if not files:
            last = git("log", "-1", "--format=%H", "--", DEFS_DIR).strip()
            rev = f"{last}^" if last else ""
            files = git("ls-tree", "-r", "--name-only", rev, DEFS_DIR).split() if rev else []
        if files:
            out = {Path(f).stem: json.loads(git("show", f"{rev}:{f}")) for f in files if f.endswith(".json")}
            where = git("rev-parse", "--short=12", rev).strip()
            return out, f"repository {'tree' if rev == 'HEAD' else 'history'} at {where} ({DEFS_DIR})"
    except (subprocess.SubprocessError, ValueError, OSError):
        pass
    return {}, "none (no --dataset and no definitions in the repository or its history)"


def changed_definitions(workspace: Path, dataset: set[str]) -> list[str]:
    """Definition files this change adds or edits (relative paths): what the sandbox job must prove."""
    if (workspace / ".git").exists():
        check_worktree(workspace)
    try:
        out = subprocess.run(["git", "-C", str(workspace), "status", "--porcelain", "--untracked-files=all", "--",
                              DEFS_DIR], capture_output=True, text=True, timeout=60, check=True,
                             env=env_without_git_prompts()).stdout
        return sorted(line[3:] for line in out.splitlines() if line[3:].endswith(".json") and line[:2] != " D")
    except (subprocess.SubprocessError, OSError):  # not a git checkout: whatever is on disk and not in the dataset
        root = workspace / DEFS_DIR
        return sorted(str(f.relative_to(workspace)) for f in root.rglob("*.json") if f.stem not in dataset) \
            if root.is_dir() else []
