"""Bounded capture of a stream: keeps the head and the tail, counts the rest.

Memory stays at `limit` bytes whatever the command prints (a hostile
command can print gigabytes), and the text matches `bound_output`'s format.
"""

from __future__ import annotations

import threading
import time


class OutputBuffer:
    def __init__(self, limit: int):
        self.half = max(limit // 2, 1)
        self.limit = 2 * self.half
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.last_activity = time.monotonic()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self.total += len(data)
            self.last_activity = time.monotonic()
            room = self.half - len(self.head)
            if room > 0:
                self.head += data[:room]
                data = data[room:]
            if data:
                self.tail += data
                if len(self.tail) > 2 * self.half:  # trim in batches, not per byte
                    del self.tail[: len(self.tail) - self.half]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> tuple[str, bool]:
        with self._lock:
            if self.total <= self.limit:
                return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace"), False
            tail = bytes(self.tail[-self.half:])
            dropped = self.total - len(self.head) - len(tail)
            return (
                bytes(self.head).decode("utf-8", "replace")
                + f"\n[... {dropped} bytes truncated ...]\n"
                + tail.decode("utf-8", "replace"),
                True,
            )


def last_activity(*buffers: OutputBuffer) -> float:
    return max(b.last_activity for b in buffers)


def write_host_file(path, text: str) -> None:
    """Write `path` in a directory a sandboxed command could write to (its output directory).

    Whatever the command left at that name (a symlink to a host file, a FIFO, a directory) is
    removed first and the file is created anew without following links: as root, writing through
    a planted symlink would let the command choose which host file we overwrite.
    """
    import os
    import shutil

    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
