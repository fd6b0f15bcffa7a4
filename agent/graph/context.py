"""Small helpers every node shares: the candidate in hand, its job context, stage timings."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from tools.targets.base import Candidate, JobContext


# The candidate's change rides in the checkpoint, so a worker without this one's disk can re-create the
# worktree (agent.graph.recreate). A registration is a few KiB; a change over this is not kept, and a resume
# elsewhere then says so instead of verifying something else.
CARRIED_DIFF_MAX = 256 * 1024


def carried_diff(worktree: Path, base_rev: str) -> dict:
    """The patch keys that carry the worktree's change: `diff`, or `diff_omitted` saying why not."""
    from tools.repo.workspace import binary_diff

    diff = binary_diff(worktree, base_rev)
    size = len(diff.encode())
    if size > CARRIED_DIFF_MAX:
        return {"diff": None, "diff_omitted": f"{size} bytes, over the {CARRIED_DIFF_MAX} kept in the checkpoint"}
    return {"diff": diff}


def timed(name: str, start: float) -> dict:
    return {"timings": {name: round(time.monotonic() - start, 3)}}


def current(state: OnboardState) -> Candidate:
    return Candidate(**state["candidates"][state["candidate_index"]])


def job_context(state: OnboardState, deps: Deps, work_dir: Path | None = None) -> JobContext:
    """The context of the current attempt (or of `work_dir`, for the LLM's own verifications)."""
    s = deps.settings
    tiny = (state.get("tiny") or {}).get("path")
    if work_dir is None:
        work_dir = Path(state["job_dir"]) / f"attempt-{state.get('candidate_index', 0)}"
    return JobContext(model_type=state["analysis"]["model_type"], tiny_dir=Path(tiny) if tiny else None,
                      work_dir=work_dir, parity_tolerance=s.parity_tolerance, timeout_s=s.verify_timeout_s,
                      tests_timeout_s=s.tests_timeout_s, devices=devices_for(s, state.get("request", {})),
                      precision_matrix=s.precision_matrix, precision_tolerances=s.precision_tolerances,
                      cpu_weight=s.sandbox_cpu_weight)


def devices_for(settings, request: dict) -> list[str] | None:
    """The devices a job verifies on: the settings' list, else the request's device label (a job routed to
    a GPU worker measures the GPU), else None: whatever the runtime reports."""
    if settings.devices:
        return list(settings.devices)
    return [request["device"]] if request.get("device") else None
