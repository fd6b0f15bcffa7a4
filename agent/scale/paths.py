"""The files a checkpoint points to: a resume on a machine that lacks them must say so, not fail obscurely.

Scale mode keeps the graph's state in Postgres, but the state names files
(the job dir, the worktree, the config, the tiny model) on the machine that
ran the first nodes. Until a foreign resume can re-create them, workers share
one data dir (same path everywhere, e.g. NFS) and this check names what is missing.
"""

from __future__ import annotations

from pathlib import Path


def missing_paths(state: dict) -> list[str]:
    """The state's local paths that do not exist here, by what they are."""
    named = {
        "job dir": state.get("job_dir"),
        "worktree": (state.get("workspace") or {}).get("path"),
        "config": (state.get("request") or {}).get("config_path"),
        "tiny model": (state.get("tiny") or {}).get("path"),
    }
    return [f"{what} {path}" for what, path in named.items() if path and not Path(path).exists()]
