"""llm_implement and the routing around it: the LLM takes over where registration alone failed.

Round 0 starts from the best deterministic candidate's registration and that
candidate's first failure; every later round is a repair: the gate's first
failure goes back into the same conversation, at most `repair_attempts` times
(ONBOARD_REPAIR_ATTEMPTS, shared with the rest of the graph).
Each round is a new candidate entry (`llm:<base>#<round>`), so attempts,
per-attempt directories and the PR record read like any other candidate's.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from agent.llm import prompts as llm_prompts
from agent.graph.deps import Deps
from agent.llm.loop import ToolLoop
from agent.llm.client import Budget, LLMClient, OpenAIClient
from agent.llm.settings import LLMSettings
from agent.graph.nodes import change
from agent.graph.nodes import finish
from agent.llm.redact import Redactor
from agent.graph.state import OnboardState
from agent.llm.trajectory import Trajectory, path_for
from tools.llm_tools import TOOLS, ToolContext
from tools.repo.workspace import RepoManager, diff_against
from tools.targets.base import Candidate, JobContext

LLM_PREFIX = "llm:"
VERSION_REFUSAL = re.compile(r"\bversion\b.*\b(required|allow|support)", re.IGNORECASE)


def settings() -> LLMSettings:
    return LLMSettings()


def make_client(s: LLMSettings) -> LLMClient:
    return OpenAIClient(s)


def redactor_for(s: LLMSettings) -> Redactor:
    return Redactor(extra=[s.api_key.get_secret_value()] if s.api_key else [])


# -- routing ----------------------------------------------------------------------------------

def after_verify(state: OnboardState, deps: Deps) -> str:
    nxt = change.after_verify(state)
    if nxt != "report" or not settings().configured:
        return nxt
    cand = state["candidates"][state["candidate_index"]]
    if not cand["id"].startswith(LLM_PREFIX):
        return "llm_implement"  # the deterministic candidates are used up
    llm = state.get("llm") or {}
    repairs_done = llm.get("rounds", 0) - 1
    return "llm_implement" if llm.get("status") == "submitted" and repairs_done < deps.settings.repair_attempts \
        else "report"


def after_llm(state: OnboardState) -> str:
    return "verify" if (state.get("llm") or {}).get("status") == "submitted" else "report"


# -- the node ---------------------------------------------------------------------------------

def _base_candidate(state: OnboardState) -> tuple[dict, str]:
    """The deterministic candidate to start from, and its first failure."""
    attempts = [a for a in state.get("attempts", []) if not a["candidate"].startswith(LLM_PREFIX)]
    exported = [a for a in attempts if a.get("max_abs_diff") is not None]
    # A base refused for its version bounds got nowhere; one that failed while tracing got further.
    tried = [a for a in attempts if not VERSION_REFUSAL.search(a.get("first_failure") or "")] or attempts
    best = min(exported, key=lambda a: a["max_abs_diff"]) if exported else (tried[0] if tried else None)
    by_id = {c["id"]: c for c in state["candidates"]}
    if best and best["candidate"] in by_id:
        return by_id[best["candidate"]], best.get("first_failure") or "verification failed"
    return state["candidates"][0], "not verified yet"


def _setup(state: OnboardState, deps: Deps, base: dict) -> None:
    """Workspace = base revision + the base candidate's registration (idempotent: redone on resume)."""
    ws = Path(state["workspace"]["path"])
    RepoManager.reset(ws, state["workspace"]["base_rev"])
    ctx = _job_ctx(state, deps, Path(state["job_dir"]) / "llm" / "setup")
    deps.target.apply(Candidate(**base), state["analysis"], ws, ctx)


def _job_ctx(state: OnboardState, deps: Deps, work_dir: Path) -> JobContext:
    s = deps.settings
    return JobContext(model_type=state["analysis"]["model_type"], tiny_dir=Path(state["tiny"]["path"]),
                      work_dir=work_dir, parity_tolerance=s.parity_tolerance, timeout_s=s.verify_timeout_s,
                      tests_timeout_s=s.tests_timeout_s)


def verifier(state: OnboardState, deps: Deps, cand: dict):
    """run_verification's backend: the target's checks without the slow test phase, cached by diff."""
    ws = Path(state["workspace"]["path"])
    root = Path(state["job_dir"]) / "llm" / "verify"

    def run() -> dict:
        key = hashlib.sha256(diff_against(ws, state["workspace"]["base_rev"]).encode()).hexdigest()[:16]
        cached = root / f"{key}.json"
        if cached.exists():
            return {**json.loads(cached.read_text()), "cached": True}
        ctx = _job_ctx(state, deps, root / key)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        report = deps.target.verify(Candidate(**cand), state["analysis"], ws, ctx, deps.sandbox, run_tests=False)
        data = report.model_dump(mode="json")
        cached.write_text(json.dumps(data))
        return data
    return run


def implement(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    s = settings()
    redactor = redactor_for(s)
    job_dir = Path(state["job_dir"])
    traj = Trajectory.load_or_new(path_for(job_dir), redactor, thread_id=state["thread_id"],
                                  target=deps.target.name, model_type=state["analysis"]["model_type"],
                                  settings=s.public_dict())
    done = (state.get("llm") or {}).get("rounds", 0)
    rnd = traj.open_round()
    if rnd is None and len(traj.rounds) > done:
        # The round ended but the process died before the checkpoint: take its result as it is.
        rnd = traj.rounds[done]
        return _update(state, traj, rnd, rnd["status"], rnd["message"], rnd.get("summary"), t)
    if rnd is None:
        if done == 0:
            base, failure = _base_candidate(state)
            _setup(state, deps, base)
            tool_names = list(TOOLS)
            traj.messages[:] = [
                {"role": "system", "content": llm_prompts.system(deps.target, state, tool_names, s.max_steps)},
                {"role": "user", "content": llm_prompts.task(deps.target, state, base["id"], failure, redactor)}]
        else:
            base = _llm_base(state)
            traj.messages.append({"role": "user", "content": llm_prompts.repair(
                state["verification"], done, deps.settings.repair_attempts, redactor)})
        rnd = traj.start_round("implement" if done == 0 else "repair", f"{LLM_PREFIX}{base['base']}#{done}")
        rnd.update(base=base["id"], first_message=len(traj.messages) - 1)
        traj.save()
    cand = _llm_candidate(state, rnd)
    budget = Budget.from_settings(s)
    budget.restore(traj.data.get("usage") or {})
    ctx = ToolContext(workspace=Path(state["workspace"]["path"]), output_chars=s.tool_output_chars,
                      verify=verifier(state, deps, cand), references=state.get("references") or [])
    deps.progress(f"LLM implementer round {rnd['round']} ({rnd['kind']}) with {s.model}")
    # Tools cannot leave the workspace, but code the model writes runs when verified: say how contained.
    warning = getattr(deps.sandbox, "warning", None)
    if warning and traj.data.get("sandbox_warning") != warning:
        traj.data["sandbox_warning"] = warning
        deps.progress(f"LLM-written code is verified in a weaker sandbox: {warning}")
    try:
        loop = ToolLoop(make_client(s), TOOLS, ctx, budget, traj, redactor, s.max_format_errors,
                        deps.progress, round_start=rnd.get("first_message", 0))
        result = loop.run()
        status, message, summary = result.status, result.message, result.summary
    except Exception as exc:  # the client could not even start (bad URL): a clean exit_error
        status, message, summary = "exit_error", f"{type(exc).__name__}: {str(exc)[:300]}", None
    traj.end_round(status, message, summary, budget.snapshot())
    deps.progress(f"LLM round {rnd['round']}: {status} ({message}); {budget.usage.total} tokens, "
                  f"{budget.steps} steps")
    return _update(state, traj, rnd, status, message, summary, t)


def _llm_base(state: OnboardState) -> dict:
    cand = next(c for c in state["candidates"] if c["id"].startswith(LLM_PREFIX))
    return {**cand, "id": cand["params"].get("from", cand["id"])}


def _llm_candidate(state: OnboardState, rnd: dict) -> dict:
    by_id = {c["id"]: c for c in state["candidates"]}
    base = by_id[rnd["base"]] if rnd.get("base") in by_id else _llm_base(state)
    return {"id": rnd["candidate"], "base": base["base"], "patterns": base.get("patterns", []),
            "why": "LLM implementer, starting from the closest registration",
            "params": {**base.get("params", {}), "from": base["id"]}}


def _update(state: OnboardState, traj: Trajectory, rnd: dict, status: str, message: str,
            summary: str | None, t: float) -> dict:
    cand = _llm_candidate(state, rnd)
    candidates = [c for c in state["candidates"] if c["id"] != cand["id"]] + [cand]
    usage = traj.data.get("usage") or {}
    return {"llm": {"rounds": rnd["round"] + 1, "status": status, "message": message, "summary": summary,
                    "trajectory": str(traj.path), "usage": usage, "format_errors": traj.data.get("format_errors", 0)},
            "candidates": candidates, "candidate_index": len(candidates) - 1,
            "patch": {"candidate": cand["id"], "files": [], "notes": [f"LLM: {summary}"] if summary else []},
            "timings": {f"llm[{rnd['round']}]": round(time.monotonic() - t, 3)}}


# -- the report -------------------------------------------------------------------------------

WHY_LLM = {
    "S1": "no registered family reproduces its numbers, so the change needs more than a registration",
    "S2": "registering it after its closest family is not enough; its forward must be adapted for export",
    "S3": "it belongs to no supported family, so a new export configuration has to be written",
}


def needs_llm_message(state: OnboardState, detail: str) -> str:
    analysis, plan = state.get("analysis", {}), state.get("plan", {})
    situation = plan.get("situation", "?")
    tried = ", ".join(a["candidate"] for a in state.get("attempts", [])) or "none"
    # finish.report's own hint about configuring an endpoint is replaced by the fuller one below
    detail = detail.split("; an implementer must change", 1)[0]
    return (f"needs an LLM endpoint: {analysis.get('model_type')} is a {analysis.get('kind', '?')} model "
            f"(features: {', '.join(analysis.get('features') or []) or 'none'}), situation {situation}; "
            f"candidates tried without an LLM: {tried}. Result: {detail}. Why an LLM: "
            f"{WHY_LLM.get(situation, WHY_LLM['S2'])}, which is the LLM implementer's job. To let it try, "
            "configure an OpenAI-compatible endpoint (ONBOARD_LLM_BASE_URL, e.g. http://127.0.0.1:8000/v1; "
            "ONBOARD_LLM_MODEL; ONBOARD_LLM_API_KEY if the endpoint needs one) and start the run again.")


def _overlay(state: OnboardState, outcome: str, detail: str) -> dict | None:
    if outcome not in ("refused", "needs_llm"):  # pr, already_supported, dry_run, rejected stand as they are
        return None
    llm = state.get("llm")
    if llm:
        usage = llm.get("usage") or {}
        spent = f"{usage.get('total_tokens', 0)} tokens, {usage.get('steps', 0)} steps"
        if llm["status"] != "submitted":
            why = f"the LLM implementer stopped with {llm['status']} ({llm['message']})"
        else:
            why = (f"the LLM implementer's change still fails after {llm['rounds'] - 1} repair rounds: "
                   f"{(state.get('verification') or {}).get('first_failure', '')[:300]}")
        return {"outcome": "refused", "message": f"no PR: {why}; {spent}; trajectory {llm['trajectory']}"}
    needs = outcome == "needs_llm" or (state.get("plan") or {}).get("situation") in ("S2", "S3")
    if needs and not settings().configured:
        return {"outcome": "needs_llm", "message": needs_llm_message(state, detail)}
    return None


def report(state: OnboardState, deps: Deps) -> dict:
    update = finish.report(state, deps)
    overlay = _overlay(state, update.get("outcome") or state.get("outcome") or "",
                       update.get("message") or state.get("message") or "")
    if overlay:
        update.update(overlay)
        path = Path(state["job_dir"]) / "report.json"
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc.update(overlay, llm=state.get("llm"))
        path.write_text(json.dumps(doc, indent=2, default=str))
    return update
