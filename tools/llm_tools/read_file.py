"""read_file: a range of lines of a workspace file, numbered, bounded."""

from __future__ import annotations

from tools.llm_tools.base import Tool, ToolContext, ToolRefused, bound, confine, numbered, read_text, rel

DEFAULT_SPAN = 300


def _line_arg(args: dict, key: str, default: int | None) -> int | None:
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ToolRefused(f"`{key}` must be a positive integer (1-based line number)")
    return value


def run(args: dict, ctx: ToolContext) -> str:
    path = confine(ctx, args.get("path"))
    lines = read_text(path).splitlines(keepends=True)
    start = _line_arg(args, "start_line", 1)
    if start > max(1, len(lines)):
        raise ToolRefused(f"{rel(ctx, path)} has {len(lines)} lines; start_line {start} is past the end")
    end = _line_arg(args, "end_line", None) or min(len(lines), start + DEFAULT_SPAN - 1)
    if end < start:
        raise ToolRefused("`end_line` is before `start_line`")
    end = min(end, len(lines))
    head = f"{rel(ctx, path)} lines {start}-{end} of {len(lines)}"
    more = "" if end >= len(lines) else f"\n[more below: read from line {end + 1}]"
    return bound(f"{head}\n{numbered(lines[start - 1:end], start)}{more}", ctx.output_chars,
                 "read a narrower line range")


TOOL = Tool(
    name="read_file",
    description=f"Read lines of a workspace file with line numbers (default: {DEFAULT_SPAN} lines from "
                "start_line). Line numbers are for reading only; str_replace matches text, not numbers.",
    parameters={"type": "object", "properties": {
        "path": {"type": "string", "description": "file relative to the workspace root"},
        "start_line": {"type": "integer", "description": "first line, 1-based", "default": 1},
        "end_line": {"type": "integer", "description": "last line, inclusive"}},
        "required": ["path"], "additionalProperties": False},
    run=run,
)
