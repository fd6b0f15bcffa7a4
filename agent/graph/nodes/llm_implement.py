"""llm_implement: the LLM takes over where the deterministic candidates failed.

Round 0 starts from the best deterministic candidate's change and that
candidate's first failure; every later round is a repair: the gate's first
failure goes back into the same conversation, at most `repair_attempts` times
(ONBOARD_REPAIR_ATTEMPTS, shared with the rest of the graph).
Each round is a new candidate entry (`llm:<base>#<round>`), so attempts,
per-attempt directories and the PR record read like any other candidate's.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from agent.graph.context import carried_diff, job_context
from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from agent.graph.verdict import LLM_PREFIX, best_attempt
from agent.llm import prompts as llm_prompts
from agent.llm.client import Budget, LLMClient, OpenAIClient
from agent.llm.loop import ToolLoop
from agent.llm.redact import Redactor
from agent.llm.settings import LLMSettings
from agent.llm.trajectory import Trajectory, path_for
from tools.llm_tools import TOOLS, ToolContext
from tools.repo.workspace import RepoManager, diff_against
from tools.targets.base import Candidate


def make_client(s: LLMSettings) -> LLMClient:
    return OpenAIClient(s)


def redactor_for(s: LLMSettings) -> Redactor:
    return Redactor(extra=[s.api_key.get_secret_value()] if s.api_key else [])


# -- the node ---------------------------------------------------------------------------------

def _base_candidate(state: OnboardState) -> tuple[dict, str]:
    """The deterministic candidate to start from, and its first failure."""
    best = best_attempt(state.get("attempts", []), deterministic_only=True)
    by_id = {c["id"]: c for c in state["candidates"]}
    if best and best["candidate"] in by_id:
        return by_id[best["candidate"]], best.get("first_failure") or "verification failed"
    return state["candidates"][0], "not verified yet"


def _setup(state: OnboardState, deps: Deps, base: dict) -> None:
    """Workspace = base revision + the base candidate's registration (idempotent: redone on resume)."""
    ws = Path(state["workspace"]["path"])
    RepoManager.reset(ws, state["workspace"]["base_rev"])
    ctx = job_context(state, deps, Path(state["job_dir"]) / "llm" / "setup")
    deps.target.apply(Candidate(**base), state["analysis"], ws, ctx)


def verifier(state: OnboardState, deps: Deps, cand: dict):
    """run_verification's backend: the target's checks without the slow test phase, cached by diff."""
    ws = Path(state["workspace"]["path"])
    root = Path(state["job_dir"]) / "llm" / "verify"

    def run() -> dict:
        key = hashlib.sha256(diff_against(ws, state["workspace"]["base_rev"]).encode()).hexdigest()[:16]
        cached = root / f"{key}.json"
        if cached.exists():
            return {**json.loads(cached.read_text()), "cached": True}
        ctx = job_context(state, deps, root / key)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        report = deps.target.verify(Candidate(**cand), state["analysis"], ws, ctx, deps.sandbox, run_tests=False)
        data = report.model_dump(mode="json")
        cached.write_text(json.dumps(data))
        return data
    return run


def llm_implement(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    s = deps.llm
    redactor = redactor_for(s)
    job_dir = Path(state["job_dir"])
    traj = Trajectory.load_or_new(path_for(job_dir), redactor, thread_id=state["thread_id"],
                                  target=deps.target.key, model_type=state["analysis"]["model_type"],
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
                {"role": "system", "content": llm_prompts.system(deps.target, state, tool_names, s.max_steps, deps.settings.parity_tolerance)},
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
                      verify=verifier(state, deps, cand), references=state.get("references") or [],
                      done_when=deps.target.done_when)
    deps.progress(f"LLM implementer round {rnd['round']} ({rnd['kind']}) with {s.model}")
    # Tools cannot leave the workspace, but code the model writes runs when verified: say how contained.
    warning = deps.sandbox.warning
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
            "patch": {"candidate": cand["id"], "files": [], "notes": [f"LLM: {summary}"] if summary else [],
                      **carried_diff(Path(state["workspace"]["path"]), state["workspace"]["base_rev"])},
            "timings": {f"llm[{rnd['round']}]": round(time.monotonic() - t, 3)}}
