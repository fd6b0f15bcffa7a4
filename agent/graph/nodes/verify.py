"""verify: the target's checks on the workspace, in the target's sandbox; one attempt record."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.context import current, job_context, timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from sandboxes.output import write_host_file
from tools.repo.workspace import changed_files, diff_against


def verify(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    cand = current(state)
    ctx = job_context(state, deps)
    deps.progress(f"verifying {cand.id} in the {deps.sandbox.name} sandbox")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    report = deps.target.verify(cand, state["analysis"], ws, ctx, deps.sandbox, run_tests=True)
    diff_path = ctx.work_dir / "change.diff"
    # The attempt dir is the job's output dir: never follow what the job left there.
    write_host_file(diff_path, diff_against(ws, state["workspace"]["base_rev"]))
    report_path = ctx.work_dir / "verification.json"
    report.raw_path = str(report_path)
    write_host_file(report_path, report.model_dump_json(indent=2))
    attempt = {"candidate": cand.id, "passed": report.passed, "first_failure": report.first_failure,
               "failed_stage": report.failed_stage, "score": report.score, "score_label": report.score_label,
               "divergence": report.divergence, "report": str(report_path), "diff": str(diff_path)}
    deps.progress(f"{cand.id}: {'passed' if report.passed else 'failed — ' + report.first_failure}")
    patch = state.get("patch", {})
    return {"verification": report.model_dump(mode="json"), "attempts": [attempt],
            "patch": {**patch, "diff_path": str(diff_path),
                      "files": sorted(set(patch.get("files", [])) | changed_files(ws))},
            **timed(f"verify[{state['candidate_index']}]", t)}
