"""view_references: how earlier, similar models were onboarded (patterns, then a bounded diff)."""

from __future__ import annotations

import json
from pathlib import Path

from tools.llm_tools.base import Tool, ToolContext, ToolRefused, bound

DIFF_CHARS = 6_000


def _summary(i: int, ref: dict) -> str:
    files = ", ".join(f"{f.get('path')} ({f.get('kind')})" for f in ref.get("files", [])[:8])
    return (f"[{i}] {ref.get('subject', '')} ({ref.get('ref', '')}; score {ref.get('score')}; "
            f"models {', '.join(ref.get('model_types') or [])})\n    why: {'; '.join(ref.get('why') or [])}"
            f"\n    files: {files}")


def run(args: dict, ctx: ToolContext) -> str:
    refs = ctx.references
    if not refs:
        return "no reference changes were found for this model in the repository's history"
    index = args.get("index")
    if index is None:
        return bound("\n".join(_summary(i, r) for i, r in enumerate(refs))
                     + "\ncall view_references with `index` for one reference's patterns and diff",
                     ctx.output_chars)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(refs):
        raise ToolRefused(f"`index` must be an integer from 0 to {len(refs) - 1}")
    ref = refs[index]
    parts = [_summary(index, ref), "patterns:\n" + json.dumps(ref.get("patterns", {}), indent=1)[:DIFF_CHARS]]
    diff_path = ref.get("diff_path")
    if diff_path and Path(diff_path).is_file():
        diff = Path(diff_path).read_text(encoding="utf-8", errors="replace")
        parts.append("diff:\n" + bound(diff, DIFF_CHARS, "the rest of the diff is omitted"))
    return bound("\n".join(parts), ctx.output_chars)


TOOL = Tool(
    name="view_references",
    description="Earlier changes that onboarded similar models in this repository. Without `index`: a list; "
                "with `index`: that change's patterns and (bounded) diff.",
    parameters={"type": "object", "properties": {
        "index": {"type": "integer", "description": "which reference to show"}},
        "required": [], "additionalProperties": False},
    run=run,
)
