"""Reading a file the user points at without trusting it: what it is, a bounded read, how deep its JSON nests.

A config path may name a device, a pipe or a /proc file (size 0, endless); its JSON may nest deep enough
to exhaust recursion. These helpers answer each question without blocking, without reading without
bound and without recursing; callers turn the answers into their own one-line errors.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"))


def not_regular(path: Path) -> str | None:
    """Why `path` (which exists, or is a link) cannot be read as a file; None when it is absent or regular."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symbolic link" if path.is_symlink() else None
    except OSError as exc:
        return f"is unreadable ({exc.strerror})"
    kind = next((name for test, name in _KINDS if test(mode)), None)
    return f"is {kind}, not a regular file" if kind else None


def read_bounded(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `path` (more than `limit` means too large); OSError when unreadable."""
    # O_NONBLOCK: a file swapped for a pipe after the caller's checks must not hang the read.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit + 1)


def nesting(value: Any, stop_after: int) -> int:
    """How deeply `value` nests (dicts and lists), without recursion; counting stops past `stop_after`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth > stop_after:
                return depth
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest
