"""run_verification: the target's checks on the workspace as it is now, reported compactly."""

from __future__ import annotations

from tools.llm_tools.base import Tool, ToolContext, ToolRefused, bound

DETAIL_CHARS = 400


def compact(report: dict) -> str:
    """One line per check, the first failure spelled out: what the model needs to act on."""
    checks = report.get("checks") or []
    lines = [f"verification {'PASSED' if report.get('passed') else 'FAILED'}"]
    if report.get("first_failure"):
        lines.append(f"first failure: {report['first_failure'][:DETAIL_CHARS * 2]}")
    for c in checks:
        detail = " ".join(str(c.get("detail", "")).split())
        lines.append(f"- {c.get('name')}: {c.get('status')}" + (f" — {detail[:DETAIL_CHARS]}" if detail else ""))
        first = (c.get("metrics") or {}).get("first_divergence")
        if first:
            lines.append(f"  first divergence: {first}")
    if report.get("cached"):
        lines.append("(same workspace content as an earlier run: result reused)")
    return "\n".join(lines)


def run(args: dict, ctx: ToolContext) -> str:
    if ctx.verify is None:
        raise ToolRefused("verification is not available in this run")
    return bound(compact(ctx.verify()), ctx.output_chars, "the full report is kept on disk")


TOOL = Tool(
    name="run_verification",
    description="Run the target's checks on the workspace as it is now, without the repository's own tests "
                "(the final gate adds them). Verified means: {done_when}. Takes a while: call it after a "
                "coherent set of edits.",
    parameters={"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    run=run,
)
