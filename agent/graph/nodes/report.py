"""report: the outcome every trigger reads, decided once (graph/verdict.py) and written once."""

from __future__ import annotations

import json
from pathlib import Path

from agent.graph.deps import Deps
from agent.graph.state import FINAL_BEFORE_REPORT, OnboardState
from agent.graph.verdict import llm_hint, needs_llm, refusal
from tools.hf.modular import redefined_classes

REPORT_KEYS = ("thread_id", "outcome", "message", "advice", "model_type", "plan", "tiny", "attempts",
               "verification", "pr", "timings", "workspace", "llm")


def _llm_stopped(state: OnboardState) -> str:
    llm = state["llm"]
    usage = llm.get("usage") or {}
    spent = f"{usage.get('total_tokens', 0)} tokens, {usage.get('steps', 0)} steps"
    if llm["status"] != "submitted":
        why = f"the LLM implementer stopped with {llm['status']} ({llm['message']})"
    else:
        why = (f"the LLM implementer's change still fails after {llm['rounds'] - 1} repair rounds: "
               f"{(state.get('verification') or {}).get('first_failure', '')[:300]}")
    return f"no PR: {why}; {spent}; trajectory {llm['trajectory']}"


def verdict(state: OnboardState, llm_configured: bool) -> dict:
    """Outcome and message of a run that ended without a final outcome of its own."""
    attempts = state.get("attempts", [])
    analysis, plan = state.get("analysis", {}), state.get("plan") or {}
    advice = [f"{name} (transformers redefines it over {', '.join(bases) or 'nn.Module'})"
              for name, bases in redefined_classes(analysis.get("model_type", ""))]
    detail = refusal(attempts)
    if state.get("llm"):
        return {"outcome": "refused", "message": _llm_stopped(state), "advice": advice}
    if needs_llm(plan, attempts):
        message = detail if llm_configured else llm_hint(
            analysis.get("model_type", "?"), analysis.get("kind", "?"), analysis.get("features") or [],
            plan.get("situation", "?"), attempts, detail)
        return {"outcome": "needs_llm", "message": message, "advice": advice}
    return {"outcome": "refused", "message": detail, "advice": advice}


def report(state: OnboardState, deps: Deps) -> dict:
    update = {} if state.get("outcome") in FINAL_BEFORE_REPORT else verdict(state, deps.llm.configured)
    final = {**state, **update}
    doc = {k: final.get(k) for k in REPORT_KEYS}
    doc["target"] = deps.target.describe()
    doc["request"] = {k: v for k, v in state.get("request", {}).items() if k != "mirror"}
    doc["analysis"] = {k: v for k, v in state.get("analysis", {}).items() if k not in ("raw_text_config", "raw_config")}
    (Path(state["job_dir"]) / "report.json").write_text(json.dumps(doc, indent=2, default=str))
    return update
