"""The agreement a history bench reports: per point over judged rows, whole rows apart from unjudged ones."""

from __future__ import annotations

from agent.bench.report import page, rates
from agent.bench.store import CaseRow
from tools.targets.base import Agreement, HistoryCase


def row(sha: str, *points: tuple[str, bool | None], outcome: str = "dry_run") -> CaseRow:
    case = HistoryCase(model="m", model_type=f"m{sha}", sha=sha * 12, subject="s")
    return CaseRow(case=case, mode="parent", outcome=outcome,
                   agreements=[Agreement(point=p, agree=a) for p, a in points])


def test_rates_count_judged_points_and_keep_unreproducible_rows_apart():
    rows = [row("a", ("family", True), ("files", False), ("upstream_tests", None)),
            row("b", ("family", True), ("files", True)),
            row("c", outcome="not_reproducible")]
    got = rates(rows)
    assert got["family"] == {"agree": 2, "judged": 2, "rate": 1.0}
    assert got["files"] == {"agree": 1, "judged": 2, "rate": 0.5}
    assert got["upstream_tests"] == {"agree": 0, "judged": 0, "rate": None}
    assert got["all_points"] == {"agree": 1, "judged": 2, "rate": 0.5, "not_judged": 1}


def test_page_is_self_contained():
    rows = [row("a", ("family", False))]
    html = page({"target": "t<x>", "head": "h" * 40, "wall_s": 1, "reused": 0, "agreement": rates(rows),
                 "rows": [r.model_dump(mode="json") for r in rows], "passed_over": []})
    assert "<svg" in html and "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "t&lt;x&gt;" in html and "<x>" not in html
