"""plan: the target's situation, checklist and ranked candidates for this model."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.context import timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState


def plan(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    analysis = state["analysis"]
    if analysis["model_type"] in deps.target.supported_types(ws):
        return {"outcome": "already_supported",
                "message": f"{analysis['model_type']} is already registered in {deps.target.key} "
                           f"at {state['workspace']['base_rev'][:12]}: nothing to onboard",
                **timed("plan", t)}
    the_plan = deps.target.plan(analysis, ws)
    candidates = deps.target.candidates(analysis, ws, deps.settings.max_candidates)
    deps.progress(f"{the_plan.situation}; candidates: {', '.join(c.id for c in candidates) or 'none'}")
    return {"plan": the_plan.model_dump(), "candidates": [c.model_dump() for c in candidates],
            "candidate_index": 0, **timed("plan", t)}
