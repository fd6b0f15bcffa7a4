"""list_dir: what is in a workspace directory, a few levels deep, bounded."""

from __future__ import annotations

from tools.llm_tools.base import FORBIDDEN_PARTS, Tool, ToolContext, ToolRefused, bound, confine, rel

MAX_ENTRIES = 400
SKIP = FORBIDDEN_PARTS | {"__pycache__", ".pytest_cache", "node_modules", ".venv"}


def run(args: dict, ctx: ToolContext) -> str:
    root = confine(ctx, args.get("path") or ".")
    if not root.is_dir():
        raise ToolRefused(f"{rel(ctx, root)} is a file (use read_file)")
    depth = args.get("depth", 1)
    if not isinstance(depth, int) or not 1 <= depth <= 4:
        raise ToolRefused("`depth` must be an integer from 1 to 4")
    lines: list[str] = []

    def walk(d, level: int) -> None:
        for child in sorted(d.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            if child.name in SKIP:
                continue
            if len(lines) >= MAX_ENTRIES:
                return
            lines.append("  " * level + child.name + ("/" if child.is_dir() else ""))
            if child.is_dir() and not child.is_symlink() and level + 1 < depth:
                walk(child, level + 1)

    walk(root, 0)
    more = f"\n[listing stopped at {MAX_ENTRIES} entries; list a subdirectory]" if len(lines) >= MAX_ENTRIES else ""
    body = "\n".join(lines) or "(empty)"
    return bound(f"{rel(ctx, root)}/\n{body}{more}", ctx.output_chars, "list a subdirectory")


TOOL = Tool(
    name="list_dir",
    description="List a directory of the workspace (directories end with '/'). Paths are relative to the "
                "workspace root.",
    parameters={"type": "object", "properties": {
        "path": {"type": "string", "description": "directory relative to the workspace root", "default": "."},
        "depth": {"type": "integer", "description": "levels to descend, 1-4", "default": 1}},
        "required": [], "additionalProperties": False},
    run=run,
)
