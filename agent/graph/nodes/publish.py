"""publish: the approval gate, then one PR record (branch, body, verification) through the forge."""

from __future__ import annotations

import time
from pathlib import Path

import git
from langgraph.types import interrupt

from agent.graph.context import current
from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from prompts import render
from tools.errors import EnvironmentProblem
from tools.forge.local import branch_name
from tools.repo.workspace import git_reason
from tools.targets.base import VerifyReport


def _llm_summary(state: OnboardState) -> dict | None:
    """Tokens, steps and the trajectory when the LLM implementer wrote (part of) the change."""
    llm = state.get("llm") or {}
    if not llm:
        return None
    usage = llm.get("usage") or {}
    return {"tokens": usage.get("total_tokens", 0), "steps": usage.get("steps", 0),
            "cost": usage.get("cost_usd"), "model": llm.get("model", "")}


def _gate(state: OnboardState) -> dict | None:
    """The request's publish mode: auto (CLI, issues, nightly), approval (chat-ops), dry_run.

    Nothing with side effects runs before `interrupt()`: this node restarts from its top on resume.
    """
    mode = state.get("request", {}).get("publish", "auto")
    if mode == "dry_run":
        return {"outcome": "dry_run", "message": "verified; dry run, nothing published"}
    if mode == "approval":
        checks = state.get("verification", {}).get("checks", [])
        decision = interrupt({"question": "publish this verified change?", "thread_id": state["thread_id"],
                              "checks": {c["name"]: c["status"] for c in checks}})
        if not (isinstance(decision, dict) and decision.get("approved") is True):
            who = decision.get("by", "a reviewer") if isinstance(decision, dict) else "a reviewer"
            return {"outcome": "rejected", "message": f"verified; publication declined by {who}"}
    return None


def public_origin(ws: dict) -> str:
    """Where the base revision came from, without host paths: a URL, a package, or "a local checkout"."""
    origin = ws.get("origin", "")
    if ws.get("note"):
        return ws["note"]
    return origin if ("://" in origin or origin.startswith("pypi:")) else "a local checkout"


def publish(state: OnboardState, deps: Deps) -> dict:
    stop = _gate(state)
    if stop is not None:
        return stop
    t = time.monotonic()
    analysis, cand, target = state["analysis"], current(state), deps.target
    ws = Path(state["workspace"]["path"])
    report = VerifyReport(**state["verification"])
    meta = target.pr_meta(analysis, cand, ws, report)
    branch = branch_name(target.key, meta.key)
    body = render(
        "templates/pr_body.md.j2",
        display_name=meta.display_name, model_type=analysis["model_type"], target=target.key, candidate=cand,
        situation=state["plan"]["situation"], kind=analysis["kind"], features=analysis["features"],
        min_version=meta.min_version, min_version_source=meta.min_version_source,
        base_rev=state["workspace"]["base_rev"],
        workspace_note=public_origin(state["workspace"]),
        tiny=state.get("tiny"), tolerance=deps.settings.parity_tolerance, checks=state["verification"]["checks"],
        attempts=state.get("attempts", []), files=state["patch"]["files"],
        notes=state["patch"].get("notes", []), remote=deps.forge.public_remote(target.key),
        branch=branch, test_commands=meta.reproduce, thread_id=state["thread_id"],
        timings=state.get("timings", {}), references=state.get("references", []),
        llm=_llm_summary(state), score=report.score, score_label=report.score_label, facts=meta.facts,
    )
    summary: dict = {c.name: c.status for c in report.checks}
    if report.score is not None:
        summary["score"] = report.score
    try:
        record = deps.forge.publish(
            worktree=ws, base_rev=state["workspace"]["base_rev"], branch=branch, title=meta.title, body=body,
            target=target.key, model_type=meta.key, thread_id=state["thread_id"], verification=summary,
            subject=analysis["model_type"])
    except git.GitCommandError as exc:
        # e.g. a checkout with missing objects cannot be pushed: the machine's problem, said in one line
        raise EnvironmentProblem(f"publishing {branch} failed in git {exc.command[1] if len(exc.command) > 1 else ''}: "
                                 f"{git_reason(exc)}") from exc
    deps.progress(f"PR record {record.json_path} (branch {branch})")
    return {"pr": record.model_dump(mode="json"), "outcome": "pr",
            "message": f"verified and published: {record.url}",
            "timings": {"publish": round(time.monotonic() - t, 3)}}
