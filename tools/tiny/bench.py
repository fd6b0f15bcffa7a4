"""Coverage benchmark: build and validate a tiny model for every causal-LM type transformers knows.

Each type runs in its own child process with a timeout, so one type that hangs, leaks memory or kills
the interpreter costs only its own row. Types that need packages this machine lacks are excluded with
the reason shown, not counted as failures; everything else counts.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EXCLUDE_MARKERS = ("requires the following packages", "no module named", "pip install")


def all_types() -> list[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def bench_tiny_all(cache_dir: Path, only: list[str] | None = None, *, timeout_s: float = 240.0,
                   workers: int = 1, progress=lambda row: None) -> dict:
    """Rows per type plus coverage, build-time median/max and peak child RSS.

    `seconds` is a child's whole life (interpreter, imports, build, validation); `build_seconds` is the
    builder's own time. Coverage counts every type that is not excluded for a missing package.
    """
    types = list(only) if only else all_types()
    cache_dir = Path(cache_dir)
    started = time.monotonic()

    def one(mt: str) -> dict:
        row = run_one(mt, cache_dir, timeout_s)
        progress(row)
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(one, types))
    ok = [r for r in rows if r["status"] == "ok"]
    excluded = [r for r in rows if r["status"] == "excluded"]
    counted = len(rows) - len(excluded)
    times = [r["seconds"] for r in ok if not r.get("cached")]
    builds = [r["build_seconds"] for r in ok if not r.get("cached") and r.get("build_seconds") is not None]
    return {
        "total": len(rows), "ok": len(ok), "excluded": len(excluded),
        "failed": counted - len(ok),
        "coverage": round(100.0 * len(ok) / counted, 1) if counted else 0.0,
        "median_seconds": round(statistics.median(times), 2) if times else None,
        "max_seconds": round(max(times), 2) if times else None,
        # the same, without the child's interpreter start and imports (~4 s of every row above)
        "median_build_seconds": round(statistics.median(builds), 2) if builds else None,
        "max_build_seconds": round(max(builds), 2) if builds else None,
        "peak_rss_mb": max((r.get("peak_rss_mb") or 0 for r in rows), default=0),
        "wall_seconds": round(time.monotonic() - started, 1),
        "failures": {r["model_type"]: r["reason"] for r in rows if r["status"] not in ("ok", "excluded")},
        "exclusions": {r["model_type"]: r["reason"] for r in excluded},
        "rows": rows,
    }


def run_one(model_type: str, cache_dir: Path, timeout_s: float) -> dict:
    cmd = [sys.executable, "-m", "tools.tiny.bench", model_type, str(cache_dir)]
    start = time.monotonic()
    env_root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=env_root)
    except subprocess.TimeoutExpired:
        return {"model_type": model_type, "status": "timeout", "reason": f"no result in {timeout_s:.0f}s",
                "seconds": round(time.monotonic() - start, 2)}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"model_type": model_type, "status": "crashed", "seconds": round(time.monotonic() - start, 2),
                "reason": f"exit {proc.returncode}: {tail[:300]}"}
    return json.loads(lines[-1])


def _child(model_type: str, cache_dir: Path) -> dict:
    """Runs inside the child: everything that can go wrong becomes a row, never a traceback."""
    import resource

    row: dict = {"model_type": model_type}
    start = time.monotonic()
    try:
        from tools.hf.config import load_config
        from tools.tiny.model import build_tiny

        raw = load_config(model_type).raw
        tiny = build_tiny(raw, cache_dir, validate=True)
        row.update(status="ok", reason="", num_params=tiny.num_params, cached=tiny.cached,
                   build_seconds=tiny.build_seconds,
                   layer_pattern=tiny.layer_pattern, experts=tiny.validation.get("experts"))
    except Exception as exc:  # noqa: BLE001 - the row reports it
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        status = "excluded" if any(m in msg.lower() for m in EXCLUDE_MARKERS) else "failed"
        row.update(status=status, reason=msg)
    row["seconds"] = round(time.monotonic() - start, 2)
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


if __name__ == "__main__":  # child entry: python -m tools.tiny.bench MODEL_TYPE CACHE_DIR
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    print(json.dumps(_child(sys.argv[1], Path(sys.argv[2])), default=str), flush=True)
