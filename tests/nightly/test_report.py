"""Reports: a dashboard row per type, a real PNG, markdown, nights kept and merged."""

from __future__ import annotations

import json

from agent.nightly.report import history, night_statuses, write
from agent.nightly.status import STATUSES


def summary(run_id: str, night: str, statuses: dict[str, str], **extra) -> dict:
    rows = [{"model_type": t, "status": s, "detail": f"detail of {t}", "situation": "S1", "base": "llama",
             "score": 1.5e-7 if s == "pr" else None, "stages": {"tiny": 1.0, "verify[0]": 9.5},
             "tokens": 0, "seconds": 12.0, "pr_path": f"/prs/{t}.json" if s == "pr" else None,
             "report_path": None, "previous": None} for t, s in statuses.items()]
    return {"run_id": run_id, "night": night, "target": "optimum-intel", "wall_s": 42.0, "jobs": 2,
            "workspace": {"source": "sdist", "origin": "pypi:optimum-intel==2.2.0", "base_rev": "b" * 40, "note": ""},
            "inputs": {"transformers": "5.5.4", "target_rev": "b" * 40, "builder": "0.1.0+x"},
            "budget": {"stopped": None}, "interrupted": False, "rows": rows,
            "counts": {s: sum(v == s for v in statuses.values()) for s in STATUSES},
            "gap": {"others": [{"task": "fill-mask", "known": 3, "missing": ["bert"], "granularity": "type"}]},
            **extra}


def test_dashboard_has_a_row_per_type_and_a_png(tmp_path):
    statuses = {t: s for t, s in zip(["a", "b", "c", "d", "e", "f", "g"], STATUSES)}
    s = summary("20261128T020000Z", "2026-11-28", statuses, budget={"stopped": "wall-time budget of 1200 s reached"})
    paths = write(s, tmp_path)
    html = paths["html"].read_text()
    for t in statuses:
        assert f'<tr id="{t}">' in html
    assert "wall-time budget of 1200 s reached" in html and "fill-mask" in html
    assert "file:///prs/a.md" in html  # PR rows link to the PR body
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    md = paths["markdown"].read_text()
    assert "| pr | 1 |" in md and "`a` (via llama, max |Δ| 1.50e-07)" in md
    assert json.loads(paths["json"].read_text())["run_id"] == "20261128T020000Z"
    assert (tmp_path / "latest" / "dashboard.html").exists()


def test_skipped_rows_show_the_attempt_they_stand_for(tmp_path):
    s = summary("20261128T030000Z", "2026-11-28", {"a": "skipped"})
    s["rows"][0]["previous"] = {"status": "needs_llm", "detail": "S2"}
    html = write(s, tmp_path)["html"].read_text()
    assert "<small>last: needs_llm</small>" in html


def test_html_escapes_what_models_and_errors_say(tmp_path):
    s = summary("20261128T020000Z", "2026-11-28", {"a": "build_failed"})
    s["rows"][0]["detail"] = "export: <script>alert(1)</script>"
    html = write(s, tmp_path)["html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_nights_are_kept_and_runs_of_one_night_merge(tmp_path):
    write(summary("20261127T020000Z", "2026-11-27", {"a": "needs_llm", "b": "pr"}), tmp_path)
    write(summary("20261128T020000Z", "2026-11-28", {"a": "compare_failed", "b": "skipped"}), tmp_path)
    # a second run the same night skips what the first attempted: the night keeps the real outcome
    latest = write(summary("20261128T030000Z", "2026-11-28", {"a": "skipped", "b": "skipped"}), tmp_path)
    nights = history(tmp_path, keep_nights=30)
    assert [n["night"] for n in nights] == ["2026-11-27", "2026-11-28"]
    assert nights[1]["counts"]["compare_failed"] == 1 and nights[1]["counts"]["skipped"] == 1
    assert nights[0]["counts"]["pr"] == 1
    assert len(list((tmp_path / "runs").iterdir())) == 3
    assert (tmp_path / "latest").resolve() == latest["html"].parent.resolve()
    assert [n["night"] for n in history(tmp_path, keep_nights=1)] == ["2026-11-28"]


def test_merge_prefers_real_outcomes_over_later_skips():
    runs = [summary("1", "n", {"a": "timeout"}), summary("2", "n", {"a": "skipped"}),
            summary("3", "n", {"a": "pr"})]
    assert night_statuses(runs) == {"n": {"a": "pr"}}
    assert night_statuses(runs[:2]) == {"n": {"a": "timeout"}}
