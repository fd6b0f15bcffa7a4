"""grep: where a regular expression occurs in the workspace, bounded."""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path

# `regex` (pinned in requirements.lock) rather than `re`: its matching takes a timeout, so a pattern that
# backtracks catastrophically costs the model one refusal instead of hanging the run.
import regex

from tools.llm_tools.base import Tool, ToolContext, ToolRefused, bound, confine, read_regular, rel
from tools.llm_tools.list_dir import SKIP

MAX_MATCHES = 80
MAX_LINE = 220
DEADLINE_S = 5.0  # the whole search; a workspace greps in well under a second


def _files(root, glob: str | None):
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(filenames):
            if glob is None or fnmatch.fnmatch(name, glob):
                yield Path(dirpath) / name


def run(args: dict, ctx: ToolContext) -> str:
    pattern = args.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ToolRefused("`pattern` must be a non-empty regular expression")
    try:
        rx = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        raise ToolRefused(f"bad regular expression ({exc}); escape special characters such as ( [ . *")
    glob = args.get("glob")
    if glob is not None and not isinstance(glob, str):
        raise ToolRefused("`glob` must be a file-name pattern such as '*.py'")
    root = confine(ctx, args.get("path") or ".")
    hits: list[str] = []
    files_hit = 0
    deadline = time.monotonic() + DEADLINE_S
    for path in _files(root, glob):
        try:
            if path.is_symlink():
                continue
            data = read_regular(path)  # pipes and devices are skipped, never read (a read would block)
        except (OSError, ToolRefused):
            continue
        if b"\0" in data[:8192]:
            continue
        found = False
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                matched = rx.search(line, timeout=left)
            except TimeoutError:
                raise ToolRefused(f"the search for /{pattern}/ took more than {DEADLINE_S:g} s (nested quantifiers "
                                  "such as (a+)+ backtrack without end, or the search is too wide); simplify the "
                                  "pattern or narrow `path`") from None
            if matched:
                found = True
                if len(hits) < MAX_MATCHES:
                    text = line.strip()
                    hits.append(f"{rel(ctx, path)}:{n}: {text[:MAX_LINE]}{'…' if len(text) > MAX_LINE else ''}")
        files_hit += found
    if not hits:
        return f"no match for /{pattern}/ under {rel(ctx, root)}" + (f" in {glob} files" if glob else "")
    more = (f"\n[first {MAX_MATCHES} matches shown, in {files_hit} files; narrow `path` or `glob`]"
            if len(hits) >= MAX_MATCHES else "")
    return bound("\n".join(hits) + more, ctx.output_chars, "narrow `path` or `glob`")


TOOL = Tool(
    name="grep",
    description="Search workspace files for a Python regular expression; prints path:line: text.",
    parameters={"type": "object", "properties": {
        "pattern": {"type": "string", "description": "Python regular expression"},
        "path": {"type": "string", "description": "file or directory to search, relative", "default": "."},
        "glob": {"type": "string", "description": "only file names matching this, e.g. '*.py'"}},
        "required": ["pattern"], "additionalProperties": False},
    run=run,
)
