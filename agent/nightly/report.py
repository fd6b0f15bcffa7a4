"""What people read after a sweep: JSON summary, static HTML dashboard, markdown, a PNG chart.

Each run keeps its own directory under `runs/<run_id>/` (never overwritten),
`latest` points at the newest, and the chart is rebuilt from every kept run so
trends survive. Several runs in one night merge into that night's column: a
type's night status is its last real outcome that night, not the "skipped,
already attempted" of a later run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from agent.nightly.status import STATUSES
from prompts import render

COLORS = {"pr": "#2e7d32", "needs_llm": "#1565c0", "compare_failed": "#ef6c00", "tests_failed": "#f9a825",
          "tiny_failed": "#6a1b9a", "build_failed": "#c62828", "timeout": "#795548", "skipped": "#9e9e9e"}


def night_statuses(summaries: list[dict]) -> dict[str, dict[str, str]]:
    """night -> {model_type: status}, merging the runs of each night in order."""
    nights: dict[str, dict[str, str]] = {}
    for s in sorted(summaries, key=lambda s: s["run_id"]):
        night = nights.setdefault(s["night"], {})
        for row in s.get("rows", []):
            t, st = row["model_type"], row["status"]
            if st != "skipped" or night.get(t) in (None, "skipped"):
                night[t] = st
    return nights


def history(root: Path, keep_nights: int) -> list[dict]:
    """[{night, counts}] for the newest `keep_nights` nights, oldest first."""
    summaries = []
    for path in sorted((root / "runs").glob("*/summary.json")):
        try:
            summaries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a torn summary of a killed sweep: the chart goes on without it
    nights = night_statuses(summaries)
    out = []
    for night in sorted(nights)[-keep_nights:]:
        statuses = nights[night].values()
        out.append({"night": night, "counts": {s: sum(x == s for x in statuses) for s in STATUSES}})
    return out


def chart(nights: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in cron
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(nights) + 3), 4), dpi=100)
    labels = [n["night"] for n in nights]
    bottom = [0] * len(nights)
    for s in STATUSES:
        values = [n["counts"].get(s, 0) for n in nights]
        ax.bar(labels, values, bottom=bottom, color=COLORS[s], label=s)
        bottom = [b + v for b, v in zip(bottom, values)]
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("model types")
    ax.set_title("nightly sweep: status per night")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def _stages(row: dict) -> str:
    return " · ".join(f"{k} {v:.1f}" for k, v in row.get("stages", {}).items() if v >= 0.05)


def _link(row: dict) -> tuple[str, str] | None:
    if row.get("pr_path"):
        return "PR", Path(row["pr_path"]).with_suffix(".md").as_uri()
    if row.get("report_path"):
        return "report", Path(row["report_path"]).as_uri()
    prev = row.get("previous") or {}
    if prev.get("report_path"):
        return "last report", Path(prev["report_path"]).as_uri()
    return None


def view(summary: dict) -> dict:
    """The template's context: rows with display fields, counts in status order."""
    rows = []
    for r in summary.get("rows", []):
        diff = r.get("score", r.get("max_abs_diff"))
        rows.append({**r, "diff_text": f"{diff:.2e}" if diff is not None else "",
                     "stages_text": _stages(r), "link": _link(r), "color": COLORS.get(r["status"], "#9e9e9e")})
    return {"s": summary, "rows": rows, "statuses": STATUSES, "colors": COLORS,
            "counts": summary.get("counts", {}), "others": summary.get("gap", {}).get("others", [])}


def write(summary: dict, root: Path, keep_nights: int = 30) -> dict[str, Path]:
    run_dir = root / "runs" / summary["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": run_dir / "summary.json", "html": run_dir / "dashboard.html",
             "markdown": run_dir / "summary.md", "png": run_dir / "statuses.png"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    tmp.replace(paths["json"])
    nights = history(root, keep_nights)
    chart(nights, paths["png"])
    ctx = {**view(summary), "nights": nights, "png": paths["png"].name, "dashboard": str(paths["html"])}
    paths["html"].write_text(render("templates/nightly_dashboard.html.j2", **ctx))
    paths["markdown"].write_text(render("templates/nightly_summary.md.j2", **ctx))
    _point_latest(root, run_dir)
    return paths


def _point_latest(root: Path, run_dir: Path) -> None:
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.relative_to(root))
        tmp.replace(link)
    except OSError:  # filesystems without symlinks get a copy
        shutil.rmtree(link, ignore_errors=True)
        shutil.copytree(run_dir, link)
