"""What every tool the LLM may call shares: the context, path confinement, bounded output.

Tools never raise at the model: a refusal is a `ToolRefused` whose message
says what to do instead, and the loop turns it into an observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MAX_FILE_BYTES = 2_000_000  # larger files are refused (data, not source)
FORBIDDEN_PARTS = {".git"}  # hooks and the worktree link live there: never readable or writable


class ToolRefused(Exception):
    """The call cannot be done as asked; the message tells the model what would work."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments object
    run: Callable[[dict, "ToolContext"], str]

    def spec(self, ctx: "ToolContext | None" = None) -> dict:
        # "{done_when}" in a description is the target's own sentence for what verified means.
        done_when = (ctx.done_when if ctx else "") or "the target's checks pass"
        return {"type": "function", "function": {"name": self.name, "parameters": self.parameters,
                                                 "description": self.description.replace("{done_when}", done_when)}}


@dataclass
class ToolContext:
    workspace: Path
    output_chars: int = 12_000
    # Runs the target's verification on the workspace as it is; returns the report as data.
    verify: Callable[[], dict] | None = None
    references: list[dict] = field(default_factory=list)
    done_when: str = ""  # the target's sentence for "verified"
    finished: str | None = None  # set by `finish`
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).resolve()


def confine(ctx: ToolContext, path: Any, *, must_exist: bool = True) -> Path:
    """The absolute path of `path` inside the workspace, or ToolRefused saying why not."""
    if not isinstance(path, str) or not path.strip():
        raise ToolRefused("`path` must be a non-empty string relative to the workspace root")
    text = path.strip()
    if text.startswith("~") or "$" in text:
        raise ToolRefused(f"{text!r}: no `~` or `$` expansion here; give a path relative to the workspace root")
    raw = Path(text)
    root = ctx.workspace
    candidate = raw if raw.is_absolute() else root / raw
    resolved = candidate.resolve()  # follows symlinks: a link pointing out of the workspace is outside
    if resolved != root and root not in resolved.parents:
        raise ToolRefused(f"{text!r} is outside the workspace; only files under the workspace root can be "
                          "read or changed (use relative paths as list_dir shows them)")
    rel = resolved.relative_to(root)
    if FORBIDDEN_PARTS & set(rel.parts):
        raise ToolRefused(f"{text!r}: the .git directory is off limits; work on the source files")
    if must_exist and not resolved.exists():
        raise ToolRefused(f"{rel.as_posix() or '.'} does not exist (list_dir shows what is there)")
    return resolved


def rel(ctx: ToolContext, path: Path) -> str:
    return path.relative_to(ctx.workspace).as_posix() or "."


def bound(text: str, limit: int, hint: str = "ask for a narrower range") -> str:
    """Head and tail of `text` within `limit` characters, with a marker the model can act on."""
    if len(text) <= limit:
        return text
    half = max(1, limit // 2)
    dropped = len(text) - 2 * half
    return f"{text[:half]}\n[... {dropped} characters omitted; {hint} ...]\n{text[-half:]}"


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is refused without blocking.

    A named pipe or device in the workspace would block a plain read forever, so the file is opened
    non-blocking and checked through its descriptor (a file swapped for a pipe after a check is caught too).
    """
    import os
    import stat

    if path.is_dir():
        raise ToolRefused(f"{path.name} is a directory (use list_dir)")
    odd = ToolRefused(f"{path.name} is not a regular file (a pipe, socket or device)")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # opening a device can act on it: never open one
            raise odd
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY)
    except OSError as exc:
        raise ToolRefused(f"{path.name} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise odd
        if st.st_size > limit:
            raise ToolRefused(f"{path.name} is larger than {limit} bytes; grep it instead")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ToolRefused(f"{path.name} is larger than {limit} bytes; grep it instead")
    return data


def read_text(path: Path) -> str:
    data = read_regular(path)
    if b"\0" in data[:8192]:
        raise ToolRefused(f"{path.name} is a binary file")
    return data.decode("utf-8", "replace")


def numbered(lines: list[str], start: int) -> str:
    """Lines prefixed with their 1-based numbers, as read_file shows them."""
    width = len(str(start + len(lines)))
    return "\n".join(f"{n:>{width}}| {line.rstrip(chr(10))}" for n, line in enumerate(lines, start))


def python_syntax_error(path: Path, text: str) -> str | None:
    """Why `text` would not parse as Python (None when it parses, or is not Python)."""
    if path.suffix != ".py":
        return None
    import ast

    try:
        ast.parse(text)
    except SyntaxError as exc:
        return f"{exc.msg} at line {exc.lineno}"
    return None


def write_text(path: Path, text: str) -> None:
    """Write keeping the file's mode; the write is whole so a killed run leaves old or new text."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
