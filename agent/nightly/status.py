"""One status per type, from a closed set, derived from what the graph left behind.

The graph's own outcome (pr | needs_llm | refused | already_supported) is
about a single request; the sweep needs finer buckets that say where a type
stopped, so maintainers can sort the night's failures by kind of work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

STATUSES = ("pr", "needs_llm", "parity_failed", "tiny_failed", "export_failed", "timeout", "skipped")
# Statuses that mean "this type was tried with these inputs": the next run skips them.
ATTEMPTED = frozenset(STATUSES) - {"skipped"}
# Nodes up to and including `tiny` produce the model every later check runs on.
BEFORE_MODEL = ("prepare", "intake", "analyze", "plan", "references", "tiny")
ORDER = (*BEFORE_MODEL, "implement", "verify", "publish", "report")


def running_after(node: str) -> str:
    """The node that runs after `node` finished (the one a crash or kill interrupted)."""
    if node == "repair":
        return "implement"
    if node == "llm_implement":
        return "verify"
    i = ORDER.index(node) if node in ORDER else 0
    return ORDER[min(i + 1, len(ORDER) - 1)]


class Row(BaseModel):
    model_type: str
    status: str
    detail: str = ""
    situation: str | None = None
    kind: str | None = None
    base: str | None = None  # the candidate that passed, or the best failing one
    max_abs_diff: float | None = None
    first_divergence: dict | None = None
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

    def model_post_init(self, _ctx) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown nightly status {self.status!r}")


def _best(attempts: list[dict]) -> dict | None:
    exported = [a for a in attempts if a.get("max_abs_diff") is not None]
    if exported:
        return min(exported, key=lambda a: a["max_abs_diff"])
    return attempts[0] if attempts else None


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
                   base=_base(passed.get("candidate")), max_abs_diff=passed.get("max_abs_diff"),
                   pr_url=pr.get("url"), pr_path=pr.get("json_path"), **common)
    if outcome == "already_supported":
        return Row(model_type=model_type, status="skipped", detail=state.get("message", "already supported"),
                   **common)
    best = _best(attempts)
    fields = {"base": _base(best.get("candidate")) if best else None,
              "max_abs_diff": best.get("max_abs_diff") if best else None,
              "first_divergence": best.get("first_divergence") if best else None}
    if common["situation"] in ("S2", "S3") and not llm_configured:
        return Row(model_type=model_type, status="needs_llm", detail=_needs_llm_detail(common, best),
                   **fields, **common)
    if best is None:
        # No candidate to try: nothing in the registry to follow, only an implementer can help.
        return Row(model_type=model_type, status="needs_llm",
                   detail=state.get("message") or "no candidate to try", **fields, **common)
    if best.get("max_abs_diff") is not None:
        return Row(model_type=model_type, status="parity_failed", detail=_divergence(best), **fields, **common)
    return Row(model_type=model_type, status="export_failed",
               detail=f"{best.get('candidate')}: {best.get('first_failure', '')}"[:600], **fields, **common)


def _divergence(best: dict) -> str:
    div = best.get("first_divergence") or {}
    where = f" (first at prompt {div.get('prompt')}, position {div.get('position')})" if div else ""
    text = f"best {best.get('candidate')}: max |Δlogits| {best['max_abs_diff']:.3g}{where}"
    return f"{text}; {best.get('first_failure', '')}"[:600]


def _needs_llm_detail(common: dict, best: dict | None) -> str:
    head = f"{common['situation']} and no LLM endpoint"
    if best is None:
        return f"{head}; no candidate to try"
    if best.get("max_abs_diff") is not None:
        return f"{head}; {_divergence(best)}"
    return f"{head}; best {best.get('candidate')}: {best.get('first_failure', '')}"[:600]


def skipped(model_type: str, why: str, **extra) -> Row:
    return Row(model_type=model_type, status="skipped", detail=why, **extra)


def timeout(model_type: str, budget_s: float, last_node: str | None, **extra) -> Row:
    where = f"after {last_node}" if last_node else "before the first stage finished"
    return Row(model_type=model_type, status="timeout",
               detail=f"per-type budget of {budget_s:.0f} s spent; stopped {where}", **extra)
