"""implement, verify, repair: write a candidate, prove it, move on when it fails."""

from __future__ import annotations

import time
from pathlib import Path

from agent.deps import Deps
from agent.state import OnboardState
from sandboxes.output import write_host_file
from tools.repo import RepoManager, diff_against
from tools.targets.base import Candidate, JobContext


def job_context(state: OnboardState, deps: Deps) -> JobContext:
    s = deps.settings
    attempt = state.get("candidate_index", 0)
    return JobContext(model_type=state["analysis"]["model_type"], tiny_dir=Path(state["tiny"]["path"]),
                      work_dir=Path(state["job_dir"]) / f"attempt-{attempt}",
                      parity_tolerance=s.parity_tolerance, timeout_s=s.verify_timeout_s,
                      tests_timeout_s=s.tests_timeout_s)


def current(state: OnboardState) -> Candidate:
    return Candidate(**state["candidates"][state["candidate_index"]])


def implement(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    # A resumed or repeated node must start from the base, never from a half-applied edit.
    RepoManager.reset(ws, state["workspace"]["base_rev"])
    cand = current(state)
    files, notes = deps.target.apply(cand, state["analysis"], ws, job_context(state, deps))
    deps.progress(f"candidate {cand.id}: wrote {len(files)} files")
    return {"patch": {"candidate": cand.id, "files": files, "notes": notes},
            "timings": {f"implement[{state['candidate_index']}]": round(time.monotonic() - t, 3)}}


def verify(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    cand = current(state)
    ctx = job_context(state, deps)
    deps.progress(f"verifying {cand.id} in the {deps.sandbox.name} sandbox")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    report = deps.target.verify(cand, state["analysis"], ws, ctx, deps.sandbox, run_tests=True)
    diff_path = ctx.work_dir / "change.diff"
    # The sandbox wrote into work_dir: never write through a link it left there.
    write_host_file(diff_path, diff_against(ws, state["workspace"]["base_rev"]))
    report_path = ctx.work_dir / "verification.json"
    report.raw_path = str(report_path)
    write_host_file(report_path, report.model_dump_json(indent=2))
    parity = report.check("logits_parity")
    attempt = {"candidate": cand.id, "passed": report.passed, "first_failure": report.first_failure,
               "max_abs_diff": parity.metrics.get("max_abs_diff") if parity else None,
               "first_divergence": parity.metrics.get("first_divergence") if parity else None,
               "report": str(report_path), "diff": str(diff_path)}
    deps.progress(f"{cand.id}: {'passed' if report.passed else 'failed — ' + report.first_failure}")
    return {"verification": report.model_dump(mode="json"), "attempts": [attempt],
            "patch": {**state.get("patch", {}), "diff_path": str(diff_path), "files":
                      sorted(set(state.get("patch", {}).get("files", [])) | _changed(ws))},
            "timings": {f"verify[{state['candidate_index']}]": round(time.monotonic() - t, 3)}}


def _changed(ws: Path) -> set[str]:
    from tools.git_safe import open_worktree

    out = open_worktree(ws).git.status("--porcelain")
    return {line[3:] for line in out.splitlines() if line}


def repair(state: OnboardState, deps: Deps) -> dict:
    """Deterministic repair: the next candidate in the target's order."""
    return {"candidate_index": state["candidate_index"] + 1}


def after_verify(state: OnboardState) -> str:
    if state["verification"]["passed"]:
        return "publish"
    if state["candidate_index"] + 1 < len(state["candidates"]):
        return "repair"
    return "report"
