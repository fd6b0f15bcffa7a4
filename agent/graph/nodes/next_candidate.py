"""next_candidate: deterministic repair is the next candidate in the target's order."""

from __future__ import annotations

from agent.graph.deps import Deps
from agent.graph.state import OnboardState


def next_candidate(state: OnboardState, deps: Deps) -> dict:
    return {"candidate_index": state["candidate_index"] + 1}
