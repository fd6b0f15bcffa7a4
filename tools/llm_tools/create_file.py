"""create_file: a new file in the workspace (existing files are edited with str_replace)."""

from __future__ import annotations

from tools.llm_tools.base import Tool, ToolContext, ToolRefused, confine, python_syntax_error, rel, write_text

MAX_CHARS = 200_000


def run(args: dict, ctx: ToolContext) -> str:
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolRefused("`content` must be a string")
    if len(content) > MAX_CHARS:
        raise ToolRefused(f"`content` is longer than {MAX_CHARS} characters; create a smaller module")
    path = confine(ctx, args.get("path"), must_exist=False)
    name = rel(ctx, path)
    if path.is_dir():
        raise ToolRefused(f"{name} is a directory")
    if path.exists():
        if path.read_text(encoding="utf-8", errors="replace") == content:
            return f"already applied: {name} exists with exactly this content. Do not resend it."
        raise ToolRefused(f"{name} already exists; edit it with str_replace instead of recreating it")
    broken = python_syntax_error(path, content)
    if broken:
        raise ToolRefused(f"{name} would not parse ({broken}); nothing was written")
    write_text(path, content)
    n = len(content.splitlines())
    return f"created {name} ({n} line{'' if n == 1 else 's'})"


TOOL = Tool(
    name="create_file",
    description="Create a new file in the workspace (parent directories are created). Refuses to overwrite "
                "an existing file.",
    parameters={"type": "object", "properties": {
        "path": {"type": "string", "description": "new file relative to the workspace root"},
        "content": {"type": "string", "description": "full text of the file"}},
        "required": ["path", "content"], "additionalProperties": False},
    run=run,
)
