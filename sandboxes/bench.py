"""Per-command sandbox overhead: wall time of a trivial command, create to
remove, N runs per backend. Measured numbers for notes; never asserted."""

from __future__ import annotations

import statistics
import time

from sandboxes.base import Limits, SandboxUnavailable
from sandboxes.images import DEFAULT_IMAGE


def _time_runs(sandbox, cmd: list[str], runs: int) -> dict:
    limits = Limits(timeout_s=120)
    first = sandbox.run(cmd, limits=limits)  # warm-up: page cache, image layers, engine state
    if not first.ok:
        return {"error": f"{first.status}: {first.reason or first.stderr.strip()[-200:]}"}
    times = []
    for _ in range(runs):
        t = time.monotonic()
        r = sandbox.run(cmd, limits=limits)
        times.append(time.monotonic() - t)
        if not r.ok:
            return {"error": f"{r.status}: {r.reason or r.stderr.strip()[-200:]}"}
    times.sort()
    return {
        "runs": runs,
        "median_s": round(statistics.median(times), 4),
        "min_s": round(times[0], 4),
        "max_s": round(times[-1], 4),
        "p90_s": round(times[min(int(0.9 * runs), runs - 1)], 4),
    }


def bench_sandbox(runs: int = 10, image: str = DEFAULT_IMAGE, backends: tuple[str, ...] = ("docker", "local"),
                  cmd: tuple[str, ...] = ("true",)) -> dict:
    """{"command", "image", "backends": {name: {median_s, ...} | {"skipped": why} | {"error": ...}}}"""
    from sandboxes.factory import make_sandbox

    out: dict = {"command": list(cmd), "image": image, "backends": {}}
    for kind in backends:
        try:
            sandbox = make_sandbox(kind, image)
        except SandboxUnavailable as exc:
            out["backends"][kind] = {"skipped": str(exc)}
            continue
        out["backends"][kind] = _time_runs(sandbox, list(cmd), runs)
    d, l = (out["backends"].get(k, {}).get("median_s") for k in ("docker", "local"))
    if d and l:
        out["docker_over_local_s"] = round(d - l, 4)
    return out
