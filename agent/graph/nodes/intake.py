"""intake: the job's worktree (the request itself was validated before the graph started)."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.context import timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from tools.repo.workspace import Workspace


def intake(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Workspace(**state["workspace"])
    dest = Path(state["job_dir"]) / "workspace"
    deps.repos.worktree(Path(state["request"]["mirror"]), ws.base_rev, dest)
    deps.progress(f"workspace {dest} at {ws.base_rev[:12]} ({ws.source})")
    return {"workspace": {**state["workspace"], "path": str(dest)}, **timed("intake", t)}
