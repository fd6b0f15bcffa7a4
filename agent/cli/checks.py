"""Checks on what the CLI is pointed at (data dir, thread ids, databases), made before anything is written.

Each check raises `UserError` with one line; none of them creates or changes a file, so a refused
command leaves the data dir exactly as it found it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from tools.errors import UserError

# A run needs room for its mirror, tiny model and checkpoints; refusing up front beats failing halfway.
MIN_FREE_BYTES = 64 * 1024 * 1024
# thread ids are `<target>-<model_type>-<hash>`: one path component, never `.`/`..`, no separators.
THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", re.ASCII)
SQLITE_MAGIC = b"SQLite format 3\x00"


def _nearest_existing(path: Path) -> Path:
    here = path
    while not os.path.lexists(here) and here != here.parent:
        here = here.parent
    return here


def check_data_dir(path: Path, *, writes: bool, what: str = "data dir") -> None:
    """Refuse a `path` that cannot hold state: a file, a virtual filesystem, read-only, or (nearly) full."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is in the way)"
        raise UserError(f"{what} {path} is not a directory{where}")
    if not writes:
        return
    try:
        st = os.statvfs(existing)
    except OSError as exc:
        raise UserError(f"{what} {path} is unusable: {exc.strerror}") from None
    if st.f_blocks == 0:  # proc, sysfs, cgroup: directories that cannot store files
        raise UserError(f"{what} {path} is on a virtual filesystem (like /proc or /sys) that cannot hold files")
    if st.f_flag & os.ST_RDONLY or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable ({existing})")
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise UserError(f"{what} {path} has {free // 1024} KB free; a run needs at least "
                        f"{MIN_FREE_BYTES // (1024 * 1024)} MB")


def check_thread_id(thread: str) -> str:
    """`thread` when it can name a run; never a path that leaves the jobs directory."""
    if not isinstance(thread, str) or not THREAD_ID.fullmatch(thread):
        shown = repr(thread)[:80]
        raise UserError(f"{shown} is not a thread id (letters, digits, '-', '_', '.'; as `onboard run` printed it)")
    return thread


def check_database(path: Path) -> None:
    """Refuse a state database that is not SQLite, reading only its header (an empty file is a new one)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise UserError(f"{path} is not an SQLite database (corrupt or overwritten); move it aside to start "
                        "afresh")


def database_error(path: Path, exc: sqlite3.Error) -> UserError:
    """The one line for a database that passed its header check but cannot be read."""
    return UserError(f"{path} is unreadable ({exc}); it is corrupt: move it aside to start afresh")
