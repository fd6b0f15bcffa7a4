"""publish and report: the PR record, and the outcome every trigger reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from langgraph.types import interrupt

from agent.graph.deps import Deps
from agent.llm.settings import LLMSettings
from agent.graph.nodes.change import current
from agent.graph.state import OnboardState
from prompts import render
from tools.forge.local import branch_name
from tools.hf.modular import redefined_classes


def _test_commands(checks: list[dict]) -> list[str]:
    """One pytest command per test file, naming exactly the tests that passed."""
    out = []
    for c in checks:
        if c["name"].startswith("tests:"):
            ids = (c.get("metrics") or {}).get("passed_ids") or []
            out.append("pytest " + (" ".join(f'"{i}"' for i in ids) if ids else c["name"].split(":", 1)[1]))
    return out


def _llm_summary(state: OnboardState) -> dict | None:
    """Tokens, steps and the trajectory path when the LLM implementer wrote (part of) the change."""
    llm = state.get("llm") or {}
    if not llm:
        return None
    usage = llm.get("usage") or {}
    return {"tokens": usage.get("total_tokens", 0), "steps": usage.get("steps", 0),
            "cost": usage.get("cost_usd"), "model": llm.get("model", ""), "trajectory": llm.get("trajectory", "")}


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


def publish(state: OnboardState, deps: Deps) -> dict:
    stop = _gate(state)
    if stop is not None:
        return stop
    t = time.monotonic()
    analysis, cand = state["analysis"], current(state)
    target = deps.target
    version, version_source = target.min_transformers_version(analysis["model_type"])
    written = (target.written_min_version(Path(state["workspace"]["path"]), analysis["model_type"])
               if hasattr(target, "written_min_version") else None)
    if written and written != version:
        version_source = f"raised by the applied patterns (first release that ships the model: {version})"
        version = written
    # One PR per (target, key): the model type for most targets; one per checkpoint where entries are.
    key = target.record_key(analysis) if hasattr(target, "record_key") else analysis["model_type"]
    branch = branch_name(target.name, key)
    checks = state["verification"]["checks"]
    public_remote = getattr(deps.forge, "public_remote", None)  # the GitHub forge's clone URL
    remote = public_remote(target.name) if public_remote else str(deps.settings.path("remotes", f"{target.name}.git"))
    body = render(
        "templates/pr_body.md.j2",
        display_name=target.display_name(analysis["model_type"]),
        model_type=analysis["model_type"], target=target.name, candidate=cand,
        situation=state["plan"]["situation"], kind=analysis["kind"], features=analysis["features"],
        min_version=version, min_version_source=version_source,
        base_rev=state["workspace"]["base_rev"],
        workspace_note=state["workspace"].get("note") or state["workspace"]["origin"],
        tiny=state["tiny"], tolerance=deps.settings.parity_tolerance, checks=checks,
        attempts=state.get("attempts", []), files=state["patch"]["files"],
        notes=state["patch"].get("notes", []), remote=remote,
        branch=branch, test_commands=_test_commands(checks), thread_id=state["thread_id"],
        timings=state.get("timings", {}), references=state.get("references", []),
        llm=_llm_summary(state),
    )
    summary = {c["name"]: c["status"] for c in checks}
    parity = next((c for c in checks if c["name"] == "logits_parity"), None)
    if parity:
        summary["max_abs_diff"] = parity["metrics"].get("max_abs_diff")
    record = deps.forge.publish(
        worktree=Path(state["workspace"]["path"]), base_rev=state["workspace"]["base_rev"], branch=branch,
        title=target.pr_title(analysis, cand), body=body, target=target.name,
        model_type=key, thread_id=state["thread_id"], verification=summary)
    deps.progress(f"PR record {record.json_path} (branch {branch})")
    return {"pr": record.model_dump(mode="json"), "outcome": "pr",
            "message": f"verified and published: {record.url}",
            "timings": {"publish": round(time.monotonic() - t, 3)}}


def _refusal(state: OnboardState) -> tuple[str, str, list[str]]:
    attempts = state.get("attempts", [])
    exported = [a for a in attempts if a.get("max_abs_diff") is not None]
    best = min(exported, key=lambda a: a["max_abs_diff"]) if exported else (attempts[0] if attempts else None)
    model_type = state["analysis"]["model_type"]
    advice = []
    for name, bases in redefined_classes(model_type):
        advice.append(f"{name} (transformers redefines it over {', '.join(bases) or 'nn.Module'})")
    needs_llm = state.get("plan", {}).get("situation") != "S1" or bool(exported)
    if best is None:
        return "refused", "no candidate could be tried", advice
    if best.get("max_abs_diff") is not None:
        div = best.get("first_divergence") or {}
        msg = (f"no candidate passed; best {best['candidate']}: exports, but max |Δlogits| "
               f"{best['max_abs_diff']:.3g}" + (f" (first at prompt {div.get('prompt')}, position "
                                                f"{div.get('position')})" if div else "")
               + f" — {best['first_failure']}")
    else:
        msg = f"no candidate passed; first: {best['candidate']} — {best['first_failure']}"
    return ("needs_llm" if needs_llm else "refused"), msg, advice


def report(state: OnboardState, deps: Deps) -> dict:
    outcome = state.get("outcome")
    update: dict = {}
    if outcome not in ("pr", "already_supported", "dry_run", "rejected", "tiny_failed"):
        outcome, message, advice = _refusal(state)
        if outcome == "needs_llm" and not LLMSettings().configured:
            message += ("; an implementer must change the model's forward for export — configure an "
                        "OpenAI-compatible endpoint (ONBOARD_LLM_BASE_URL, ONBOARD_LLM_API_KEY) to let the "
                        "LLM implementer try")
        update = {"outcome": outcome, "message": message, "advice": advice}
    final = {**state, **update}
    job_dir = Path(state["job_dir"])
    doc = {k: final.get(k) for k in ("thread_id", "outcome", "message", "advice", "model_type", "plan",
                                      "tiny", "attempts", "verification", "pr", "timings", "workspace")}
    doc["request"] = {k: v for k, v in state.get("request", {}).items() if k != "mirror"}
    doc["analysis"] = {k: v for k, v in state.get("analysis", {}).items() if k != "raw_text_config"}
    (job_dir / "report.json").write_text(json.dumps(doc, indent=2, default=str))
    return {k: v for k, v in update.items() if k in ("outcome", "message")}
