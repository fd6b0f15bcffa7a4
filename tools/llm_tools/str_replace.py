"""str_replace: replace text that occurs exactly once; say precisely why when it does not.

The feedback follows Aider's lessons: a miss shows the closest lines, several
matches show where they are, and an edit that is already in the file is
reported as done so the model does not keep resending it. Matching tolerates
trailing whitespace only; fuzzier matching edits the wrong place.
"""

from __future__ import annotations

import difflib

from tools.llm_tools.base import (Tool, ToolContext, ToolRefused, confine, numbered, python_syntax_error,
                                  read_text, rel, write_text)

CONTEXT = 3


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _all_offsets(text: str, needle: str) -> list[int]:
    out, i = [], text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _loose_span(lines: list[str], old: str) -> list[tuple[int, int]]:
    """Line spans equal to `old` when trailing whitespace is ignored."""
    want = [ln.rstrip() for ln in old.split("\n")]
    while want and not want[-1]:
        want.pop()
    if not want:
        return []
    have = [ln.rstrip() for ln in lines]
    n = len(want)
    return [(i, i + n) for i in range(len(have) - n + 1) if have[i:i + n] == want]


def _closest(lines: list[str], old: str) -> str:
    want = old.strip("\n").split("\n")
    n = len(want)
    best, where = 0.0, None
    for i in range(max(1, len(lines) - n + 1)):
        ratio = difflib.SequenceMatcher(None, "\n".join(want), "".join(lines[i:i + n])).quick_ratio()
        if ratio > best:
            best, where = ratio, i
    if where is None or best < 0.5:
        return "no similar lines found; read_file the region and copy the text exactly"
    s = difflib.SequenceMatcher(None, "\n".join(want), "".join(lines[where:where + n]).rstrip("\n")).ratio()
    if s < 0.5:
        return "no similar lines found; read_file the region and copy the text exactly"
    return (f"did you mean these lines ({s:.0%} similar)?\n"
            f"{numbered(lines[where:where + n], where + 1)}")


def _show(text: str, first_line: int, n_lines: int) -> str:
    lines = text.splitlines(keepends=True)
    lo = max(1, first_line - CONTEXT)
    hi = min(len(lines), first_line + n_lines - 1 + CONTEXT)
    return numbered(lines[lo - 1:hi], lo)


def run(args: dict, ctx: ToolContext) -> str:
    path = confine(ctx, args.get("path"))
    old, new = args.get("old_str"), args.get("new_str")
    if not isinstance(old, str) or not isinstance(new, str):
        raise ToolRefused("`old_str` and `new_str` must both be strings")
    if not old:
        raise ToolRefused("`old_str` is empty; to add text, replace a nearby line with itself plus the new "
                          "lines, or use create_file for a new file")
    if old == new:
        raise ToolRefused("`old_str` and `new_str` are identical: nothing to change")
    name = rel(ctx, path)
    text = read_text(path)
    offsets = _all_offsets(text, old)
    note = ""
    if len(offsets) == 1:
        start = offsets[0]
        result = text[:start] + new + text[start + len(old):]
    elif len(offsets) > 1:
        where = ", ".join(str(_line_of(text, o)) for o in offsets[:10])
        raise ToolRefused(f"`old_str` occurs {len(offsets)} times in {name} (at lines {where}); include more "
                          "surrounding lines so it matches exactly once. Nothing was changed.")
    else:
        if new and new in text:
            line = _line_of(text, text.find(new))
            raise ToolRefused(f"already applied: {name} already contains `new_str` (line {line}) and not "
                              "`old_str`. Do not resend this edit.")
        lines = text.splitlines(keepends=True)
        spans = _loose_span(lines, old)
        if len(spans) != 1:
            hint = (f"it matches {len(spans)} places when trailing spaces are ignored; add context"
                    if spans else _closest(lines, old))
            raise ToolRefused(f"`old_str` was not found in {name}; {hint}. Nothing was changed.")
        a, b = spans[0]
        start = sum(len(x) for x in lines[:a])
        end = sum(len(x) for x in lines[:b])
        tail = "\n" if lines[b - 1].endswith("\n") and not new.endswith("\n") else ""
        result = text[:start] + new + tail + text[end:]
        note = " (matched ignoring trailing whitespace)"
    broken = python_syntax_error(path, result)
    if broken:
        raise ToolRefused(f"the edit would leave {name} unparseable ({broken}); nothing was changed. "
                          "Check indentation and brackets of `new_str`.")
    write_text(path, result)
    first = _line_of(result, result.find(new)) if new else _line_of(text, offsets[0] if offsets else 0)
    return f"edited {name}{note}; the region now reads:\n{_show(result, first, new.count(chr(10)) + 1)}"


TOOL = Tool(
    name="str_replace",
    description="Replace `old_str` with `new_str` in a workspace file. `old_str` must match the file's text "
                "exactly once (copy it from read_file without the line-number prefixes). Python files must "
                "still parse after the edit, or nothing is written.",
    parameters={"type": "object", "properties": {
        "path": {"type": "string", "description": "file relative to the workspace root"},
        "old_str": {"type": "string", "description": "exact text to replace, unique in the file"},
        "new_str": {"type": "string", "description": "replacement text"}},
        "required": ["path", "old_str", "new_str"], "additionalProperties": False},
    run=run,
)
