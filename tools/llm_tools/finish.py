"""finish: hand the change to the verification gate."""

from __future__ import annotations

from tools.llm_tools.base import Tool, ToolContext, ToolRefused


def run(args: dict, ctx: ToolContext) -> str:
    summary = args.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ToolRefused("`summary` must say in a few sentences what was changed and why")
    ctx.finished = summary.strip()[:2000]
    return "submitted: the verification gate runs next"


TOOL = Tool(
    name="finish",
    description="Submit the change when it is complete. The gate (export, parity, tests) decides; if it "
                "fails you will be shown the first failure.",
    parameters={"type": "object", "properties": {
        "summary": {"type": "string", "description": "what was changed and why"}},
        "required": ["summary"], "additionalProperties": False},
    run=run,
)
