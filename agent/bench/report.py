"""What a history bench found, as data (JSON), a terminal table and a self-contained HTML page.

Agreement is counted per point over the rows where that point could be judged; a row agrees when
every judged point agrees. The HTML page draws its chart as inline SVG: no script, no CDN.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from agent.bench.store import CaseRow
from tools.targets.base import PassedOver

POINTS = ("family", "tasks", "files", "upstream_tests")
MARK = {True: "yes", False: "NO", None: "n/a"}
HEADERS = ("model", "upstream", "base", "our outcome", "family", "tasks", "files", "upstream tests", "time",
           "tokens")


def point(row: CaseRow, name: str):
    return next((a for a in row.agreements if a.point == name), None)


def rates(rows: list[CaseRow]) -> dict:
    out = {}
    for name in POINTS:
        judged = [a.agree for r in rows if (a := point(r, name)) is not None and a.agree is not None]
        out[name] = {"agree": sum(judged), "judged": len(judged),
                     "rate": round(sum(judged) / len(judged), 3) if judged else None}
    # A row agrees when every judged point does; a row with nothing judged (not reproducible, a crash) is
    # counted apart, not as a disagreement.
    judged_rows = [r for r in rows if any(a.agree is not None for a in r.agreements)]
    whole = [all(a.agree for a in r.agreements if a.agree is not None) for r in judged_rows]
    out["all_points"] = {"agree": sum(whole), "judged": len(whole),
                         "rate": round(sum(whole) / len(whole), 3) if whole else None,
                         "not_judged": len(rows) - len(judged_rows)}
    return out


def as_data(result, target: str, source: str) -> dict:
    return {"target": target, "repo": source, "head": result.head, "wall_s": result.wall_s,
            "reused": result.reused, "agreement": rates(result.rows),
            "rows": [r.model_dump(mode="json") for r in result.rows],
            "passed_over": [p.model_dump(mode="json") for p in result.passed_over]}


def table_rows(rows: list[CaseRow]) -> list[list[str]]:
    out = []
    for r in rows:
        cells = [r.case.model_type, f"{r.case.sha[:10]}" + (f" #{r.case.pr}" if r.case.pr else ""), r.mode,
                 r.outcome]
        for name in POINTS:
            a = point(r, name)
            cells.append(MARK[a.agree] if a else "-")
        cells += [f"{r.onboard_s + r.compare_s:.0f} s", str(r.tokens)]
        out.append(cells)
    return out


def differences(rows: list[CaseRow]) -> list[str]:
    """One line per point where our change differs from upstream's (or could not be judged)."""
    lines = []
    for r in rows:
        if r.outcome in ("error", "not_reproducible"):
            lines.append(f"{r.case.model_type}: {r.outcome}: {r.message}")
        for a in r.agreements:
            if a.agree is not True and a.how:
                lines.append(f"{r.case.model_type} {a.point}: {a.how}")
    return lines


def write(data: dict, root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "report.json").write_text(json.dumps(data, indent=1))
    (root / "report.html").write_text(page(data))
    return root / "report.json", root / "report.html"


def _chart(agreement: dict) -> str:
    """Horizontal bars, one per point: the share of judged rows where we agree with upstream."""
    names = [*POINTS, "all_points"]
    bar_w, row_h, left = 360, 28, 130
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + bar_w + 120}" height="{row_h * len(names) + 10}"'
             ' role="img" aria-label="agreement with upstream per point">']
    for i, name in enumerate(names):
        a = agreement.get(name) or {}
        y, rate = 5 + i * row_h, a.get("rate")
        width = int(bar_w * (rate or 0))
        label = f"{rate:.0%} ({a['agree']}/{a['judged']})" if rate is not None else "not judged"
        parts += [f'<text x="0" y="{y + 17}" font-size="13">{html.escape(name)}</text>',
                  f'<rect x="{left}" y="{y}" width="{bar_w}" height="20" fill="#eee"/>',
                  f'<rect x="{left}" y="{y}" width="{width}" height="20" fill="#3a7"/>',
                  f'<text x="{left + bar_w + 8}" y="{y + 15}" font-size="13">{html.escape(label)}</text>']
    parts.append("</svg>")
    return "".join(parts)


def page(data: dict) -> str:
    from agent.bench.store import CaseRow as Row

    rows = [Row.model_validate(r) for r in data["rows"]]
    head = HEADERS
    esc = html.escape
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in table_rows(rows))
    diffs = "".join(f"<li>{esc(line)}</li>" for line in differences(rows))
    over = "".join(f"<li>{esc(p['sha'][:10])} {esc(p['subject'][:90])}: {esc(p['reason'])}</li>"
                   for p in data.get("passed_over", []))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bench history: {esc(data['target'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>{esc(data['target'])}: our onboarding against upstream's</h1>
<p>HEAD {esc(data['head'][:12])}; {len(rows)} onboarding commits replayed; wall time {data['wall_s']} s
({data['reused']} rows reused from an earlier run).</p>
{_chart(data['agreement'])}
<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{body}</table>
<h2>Where we differ</h2><ul>{diffs or '<li>nowhere</li>'}</ul>
<h2>Additions passed over</h2><ul>{over or '<li>none</li>'}</ul>
</body></html>
"""


def passed_over_lines(items: list[PassedOver]) -> list[str]:
    return [f"{p.sha[:10]} {', '.join(p.model_types[:3])}: {p.reason}" for p in items]
