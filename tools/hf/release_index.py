"""When did a model type first ship in transformers? Asked of the package index.

The answer decides `MIN_TRANSFORMERS_VERSION` in a registration. We read the
zip central directory of each release's wheel with an HTTP range request (the
last ~1 MB of a 12 MB file) and binary-search the release list, caching what
each release contains. Offline, the caller falls back to the installed version
and says so.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

INDEX_URL = "https://pypi.org/pypi/{name}/json"
TAIL_BYTES = 2_000_000


class IndexUnavailable(RuntimeError):
    pass


class _TailFile(io.RawIOBase):
    """A seekable view of the end of a remote file; reading before it fails."""

    def __init__(self, tail: bytes, total: int):
        self.tail, self.total, self.pos = tail, total, 0
        self.start = total - len(tail)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.total + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if self.pos < self.start:
            raise OSError("central directory is not within the fetched tail")
        i = self.pos - self.start
        chunk = self.tail[i:] if n < 0 else self.tail[i : i + n]
        self.pos += len(chunk)
        return chunk


def _get(url: str, timeout: float, headers: dict | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except (OSError, ValueError) as exc:
        raise IndexUnavailable(f"package index unreachable ({url}): {exc}") from exc


class ReleaseIndex:
    def __init__(self, cache_dir: Path, package: str = "transformers", timeout: float = 15.0):
        self.package = package
        self.timeout = timeout
        self.cache_file = cache_dir / f"release-models-{package}.json"
        self._cache: dict[str, list[str]] = {}
        if self.cache_file.exists():
            try:
                self._cache = json.loads(self.cache_file.read_text())
            except ValueError:
                self._cache = {}

    def _releases(self) -> tuple[str, list[tuple[Version, dict]]]:
        url = INDEX_URL.format(name=self.package)
        meta = json.loads(_get(url, self.timeout))
        out = []
        for ver, files in meta.get("releases", {}).items():
            try:
                v = Version(ver)
            except InvalidVersion:
                continue
            wheels = [f for f in files if f.get("packagetype") == "bdist_wheel" and not f.get("yanked")]
            if wheels and not v.is_prerelease:
                out.append((v, wheels[0]))
        out.sort(key=lambda p: p[0])
        return url, out

    def _models_in(self, base_url: str, version: Version, wheel: dict) -> set[str]:
        key = str(version)
        if key not in self._cache:
            url = urllib.parse.urljoin(base_url, wheel["url"])
            tail = _get(url, self.timeout, {"Range": f"bytes=-{TAIL_BYTES}"})
            size = int(wheel.get("size") or len(tail))
            if len(tail) > size:  # server ignored the range: whole file
                tail = tail[-size:]
            names = zipfile.ZipFile(_TailFile(tail, size)).namelist()
            prefix = f"{self.package}/models/"
            models = {n[len(prefix) :].split("/", 1)[0] for n in names if n.startswith(prefix)}
            self._cache[key] = sorted(m for m in models if m and not m.endswith(".py"))
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            self.cache_file.write_text(json.dumps(self._cache))
        return set(self._cache[key])

    def first_release_with(self, module_dir: str) -> str | None:
        """First non-prerelease version whose wheel has `<package>/models/<module_dir>/`."""
        base, releases = self._releases()
        lo, hi = 0, len(releases) - 1
        if hi < 0 or module_dir not in self._models_in(base, *releases[hi]):
            return None
        while lo < hi:  # invariant: the newest release has it; models are not removed
            mid = (lo + hi) // 2
            if module_dir in self._models_in(base, *releases[mid]):
                hi = mid
            else:
                lo = mid + 1
        return str(releases[lo][0])
