"""Scratch directories in the system temp dir that a killed run does not leave behind for good.

Each directory is held through an flock on an open descriptor of it for as long as its run lasts. The
kernel drops the lock when the holder dies, however it dies (SIGKILL included), so a directory whose lock
can be taken is an orphan: the next process to claim a scratch directory removes it. The holder's pid in
the name is for people reading /tmp; the lock, not the pid, decides (pids are reused).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

# A directory younger than this is never reaped: its creator may not have taken the lock yet.
MIN_AGE_S = 30.0
_reaped: set[tuple[str, str]] = set()


def claim(prefix: str, root: str | None = None) -> tuple[str, int]:
    """A new directory `<root>/<prefix>p<pid>-XXXX` and the descriptor whose lock holds it.

    The first claim of a prefix in a process removes the orphans earlier processes left.
    """
    base = root or tempfile.gettempdir()
    if (base, prefix) not in _reaped:
        _reaped.add((base, prefix))
        reap_orphans(prefix, base)
    path = tempfile.mkdtemp(prefix=f"{prefix}p{os.getpid()}-", dir=base)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # not inheritable: a job cannot keep it alive
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return path, fd


def release(path: str, fd: int) -> None:
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)


def reap_orphans(prefix: str, root: str | None = None, min_age_s: float = MIN_AGE_S) -> list[str]:
    """Remove `<prefix>p<pid>-*` directories whose holder is gone; returns what was removed."""
    base = Path(root or tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"p\d+-")
    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or now - st.st_mtime < min_age_s:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its run is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        finally:
            os.close(fd)
    return removed
