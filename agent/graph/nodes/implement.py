"""implement: write the current candidate into the workspace, from the base revision."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.context import carried_diff, current, job_context, timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from tools.repo.workspace import RepoManager


def implement(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    # A resumed or repeated node must start from the base, never from a half-applied edit.
    RepoManager.reset(ws, state["workspace"]["base_rev"])
    cand = current(state)
    applied = deps.target.apply(cand, state["analysis"], ws, job_context(state, deps))
    deps.progress(f"candidate {cand.id}: wrote {len(applied.files)} files")
    patch = {"candidate": cand.id, "files": applied.files, "notes": applied.notes,
             **carried_diff(ws, state["workspace"]["base_rev"])}
    return {"patch": patch,
            **timed(f"implement[{state['candidate_index']}]", t)}
