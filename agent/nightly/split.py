"""Where a sweep's time went: per-stage seconds read back from each type's job report and attempt reports.

The graph records node timings (analyze, plan, tiny, implement[i], verify[i], publish) in the job's
report.json; each attempt's verification.json records what the sandbox job measured inside (export,
parity, int8_export, tests…). "verify, other" is what the sandbox spent outside those (interpreter
starts, imports, rewriting the test tables): the stages of one type add up to its verify time.
"""

from __future__ import annotations

import json
from pathlib import Path

STAGES = ("plan", "tiny", "apply", "export", "compare checks", "int8", "repo tests", "verify, other", "publish")


def _load(path: str | Path | None) -> dict:
    try:
        return json.loads(Path(path).read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def attempt_split(verification: dict) -> dict[str, float]:
    t = verification.get("timings") or {}
    return {
        "export": float(t.get("export", 0.0)),
        "compare checks": float(t.get("parity", 0.0)),
        "int8": float(t.get("int8_export", 0.0)),
        "repo tests": sum(float(v) for k, v in t.items() if k == "tests" or k.startswith("tests:")),
    }


def type_split(report: dict) -> dict[str, float]:
    """Seconds per stage of one type's job, from its report.json (and the attempt reports it names)."""
    t = {k: float(v) for k, v in (report.get("timings") or {}).items()}
    split = dict.fromkeys(STAGES, 0.0)
    split["plan"] = t.get("analyze", 0.0) + t.get("plan", 0.0) + t.get("references", 0.0)
    split["tiny"] = t.get("tiny", 0.0)
    split["apply"] = sum(v for k, v in t.items() if k.startswith("implement["))
    split["publish"] = t.get("publish", 0.0)
    verify_total = sum(v for k, v in t.items() if k.startswith("verify["))
    inside = 0.0
    for attempt in report.get("attempts") or []:
        for stage, secs in attempt_split(_load(attempt.get("report"))).items():
            split[stage] += secs
            inside += secs
    split["verify, other"] = max(0.0, verify_total - inside)
    return split


def sweep_split(summary: dict) -> dict:
    """{"types": {type: {stage: s, "total": s, "status": …}}, "sum": {stage: s}, "wall_s": …} of one sweep."""
    types = {}
    for row in summary.get("rows") or []:
        if row.get("status") == "skipped":
            continue
        split = type_split(_load(row.get("report_path")))
        types[row["model_type"]] = {**split, "total": float(row.get("seconds") or 0.0), "status": row["status"]}
    total = {s: sum(v[s] for v in types.values()) for s in (*STAGES, "total")}
    return {"types": types, "sum": total, "wall_s": float(summary.get("wall_s") or 0.0),
            "jobs": summary.get("jobs")}


def latest_summary(data_dir: Path, target: str) -> Path:
    """The summary.json of the newest sweep under a data dir (or the path itself if it is one)."""
    if data_dir.is_file():
        return data_dir
    runs = sorted((data_dir / "nightly" / target / "runs").glob("*/summary.json"))
    if not runs:
        raise FileNotFoundError(f"no sweep summary under {data_dir}")
    return runs[-1]
