"""How the CLI shows things: progress lines on stderr, tables and JSON on stdout."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


class Progress:
    """One line per stage as it finishes, with the time since the last one."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def note(self, message: str) -> None:
        # messages carry names and errors verbatim: "[optimum-intel] ..." is text, not a rich style
        err.print(f"[dim]  · {escape(message)}[/dim]")

    def node(self, name: str, update: dict) -> None:
        now = time.monotonic()
        extra = ""
        if name == "verify" and update.get("attempts"):
            a = update["attempts"][-1]
            extra = " passed" if a["passed"] else f" failed: {a['first_failure'][:120]}"
        err.print(f"[bold green]✓[/] {name:<10} {now - self.last:6.1f}s{extra}")
        self.last = now


def summary_table(state: dict) -> Table:
    t = Table(title=f"onboard {state.get('model_type', '?')} → {state.get('request', {}).get('target', '?')}",
              show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("outcome", str(state.get("outcome")))
    t.add_row("message", str(state.get("message", "")))
    t.add_row("thread", str(state.get("thread_id")))
    plan = state.get("plan") or {}
    if plan:
        t.add_row("situation", plan.get("situation", ""))
    ws = state.get("workspace") or {}
    t.add_row("workspace", f"{ws.get('source')} {ws.get('origin')} @ {str(ws.get('base_rev', ''))[:12]}")
    for a in state.get("attempts", []):
        score, label = a.get("score"), a.get("score_label") or "score"
        t.add_row(f"candidate {a['candidate']}", ("passed" if a["passed"] else "failed")
                  + (f", {label} {score:.2e}" if score is not None else "")
                  + ("" if a["passed"] else f" — {a['first_failure'][:160]}"))
    for c in (state.get("verification") or {}).get("checks", []):  # what was measured, in the target's words
        t.add_row(f"  {c['name']}", f"{c['status']}" + (f": {c['detail'][:300]}" if c.get("detail") else ""))
    pr = state.get("pr")
    if pr:
        t.add_row("branch", pr["branch"])
        t.add_row("PR record", pr["json_path"])
        t.add_row("diff", pr["diff_path"])
    timings = state.get("timings") or {}
    if timings:
        t.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return t


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))
