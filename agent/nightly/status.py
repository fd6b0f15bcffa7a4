"""One status per type, from a closed set, derived from what the graph left behind.

The graph's own outcome (pr | needs_llm | refused | already_supported) is
about a single request; the sweep needs finer buckets that say where a type
stopped, so maintainers can sort the night's failures by kind of work. The
buckets are the target-neutral stages of verification (build, compare, tests),
and "best attempt" / "needs an implementer" come from the graph's one verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, field_validator

from agent.graph.build import BEFORE_CHANGE, RUNS_AFTER
from agent.graph.verdict import best_attempt, describe, needs_llm

Status = Literal["pr", "needs_llm", "compare_failed", "tests_failed", "tiny_failed", "build_failed", "timeout",
                 "skipped"]
STATUSES: tuple[str, ...] = get_args(Status)
# Names earlier versions stored (optimum-intel's words); read as their neutral buckets.
LEGACY = {"parity_failed": "compare_failed", "export_failed": "build_failed"}
# Statuses that mean "this type was tried with these inputs": the next run skips them.
ATTEMPTED = frozenset(STATUSES) - {"skipped"}
# "prepare" is the sweep's own step before the graph starts (resolving the workspace and config).
BEFORE_MODEL = ("prepare", *BEFORE_CHANGE)
FAILED_AT = {"build": "build_failed", "compare": "compare_failed", "precision": "compare_failed",
             "tests": "tests_failed"}


def running_after(node: str) -> str:
    """The node that runs after `node` finished (the one a crash or kill interrupted)."""
    return RUNS_AFTER.get(node, "intake")


class Row(BaseModel):
    model_type: str
    status: Status
    detail: str = ""
    situation: str | None = None
    kind: str | None = None
    base: str | None = None  # the candidate that passed, or the best failing one
    score: float | None = None  # the target's distance to its reference (lower is better)
    score_label: str = ""
    divergence: dict | None = None
    stages: dict[str, float] = Field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0
    pr_url: str | None = None
    pr_path: str | None = None
    report_path: str | None = None
    thread_id: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    finished_at: float | None = None
    previous: dict[str, Any] | None = None  # for skipped-as-attempted rows: what that attempt gave

    @field_validator("status", mode="before")
    @classmethod
    def _legacy(cls, value: str) -> str:
        return LEGACY.get(value, value)


def _base(candidate: str | None) -> str | None:
    return candidate.split(":", 1)[-1] if candidate else None


def _common(state: dict) -> dict:
    plan, analysis = state.get("plan") or {}, state.get("analysis") or {}
    # The LLM implementer keeps its usage under state["llm"]; a generic "usage" is read too.
    usage = (state.get("llm") or {}).get("usage") or state.get("usage") or {}
    tokens = usage.get("total_tokens", usage.get("tokens")) or 0
    return {"situation": plan.get("situation"), "kind": analysis.get("kind"),
            "stages": {k: float(v) for k, v in (state.get("timings") or {}).items()},
            "tokens": int(tokens), "thread_id": state.get("thread_id"),
            "report_path": _report(state)}


def _report(state: dict) -> str | None:
    if not state.get("job_dir"):
        return None
    path = Path(state["job_dir"]) / "report.json"
    return str(path) if path.exists() else None


def from_state(model_type: str, state: dict, *, llm_configured: bool, error: dict | None = None) -> Row:
    """The status of a finished (or crashed: `error` = {"node", "message"}) graph run."""
    common = _common(state)
    if error:
        node = error.get("node") or "prepare"
        status = "tiny_failed" if node in BEFORE_MODEL else "export_failed"
        return Row(model_type=model_type, status=status, detail=f"{node}: {error.get('message', '')}"[:600],
                   **common)
    outcome = state.get("outcome")
    if outcome == "tiny_failed":
        return Row(model_type=model_type, status="tiny_failed", detail=state.get("message", "")[:600], **common)
    attempts = state.get("attempts") or []
    if outcome == "pr":
        pr = state.get("pr") or {}
        passed = next((a for a in attempts if a.get("passed")), None) or {}
        return Row(model_type=model_type, status="pr", detail=state.get("message", ""),
                   base=_base(passed.get("candidate")), score=passed.get("score"),
                   score_label=passed.get("score_label") or "",
                   pr_url=pr.get("url"), pr_path=pr.get("json_path"), **common)
    if outcome == "already_supported":
        return Row(model_type=model_type, status="skipped", detail=state.get("message", "already supported"),
                   **common)
    best = best_attempt(attempts)
    fields = {"base": _base(best.get("candidate")) if best else None,
              "score": best.get("score") if best else None,
              "score_label": (best.get("score_label") or "") if best else "",
              "divergence": best.get("divergence") or None if best else None}
    if not llm_configured and needs_llm(state.get("plan"), attempts) and common["situation"] != "S1":
        head = f"{common['situation']} and no LLM endpoint"
        detail = f"{head}; best {describe(best)}" if best else f"{head}; no candidate to try"
        return Row(model_type=model_type, status="needs_llm", detail=detail[:600], **fields, **common)
    if best is None:
        # No candidate to try: nothing in the registry to follow, only an implementer can help.
        return Row(model_type=model_type, status="needs_llm",
                   detail=state.get("message") or "no candidate to try", **fields, **common)
    stage = best.get("failed_stage") or ("compare" if best.get("score") is not None else "build")
    return Row(model_type=model_type, status=FAILED_AT[stage], detail=f"best {describe(best)}"[:600],
               **fields, **common)


def skipped(model_type: str, why: str, **extra) -> Row:
    return Row(model_type=model_type, status="skipped", detail=why, **extra)


def timeout(model_type: str, budget_s: float, last_node: str | None, **extra) -> Row:
    where = f"after {last_node}" if last_node else "before the first stage finished"
    return Row(model_type=model_type, status="timeout",
               detail=f"per-type budget of {budget_s:.0f} s spent; stopped {where}", **extra)
