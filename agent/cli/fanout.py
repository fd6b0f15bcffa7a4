"""`onboard run MODEL --target all` and `onboard show all-…`: one model, every registered target, one table."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.output import Progress, err, out, print_json


def table(result) -> Table:
    t = Table("target", "outcome", "situation", "changed", "checks", "score", "PR / reason", "s",
              title=f"onboard {result.model} → every target ({result.wall_s:.0f} s)")
    for r in result.rows:
        score = f"{r.score_label or 'score'} {r.score:.2e}" if r.score is not None else ""
        t.add_row(r.target, r.outcome, r.situation, str(len(r.changed)), r.checks, score,
                  escape(r.pr or r.reason[:160]), f"{r.seconds:.0f}")
    return t


def run_every_target(model: str, repos: list[str], settings, jobs: int | None, as_json: bool) -> None:
    from agent.graph.fanout import parse_repos, run_all
    from tools.targets import names

    targets = names()
    progress = Progress()
    result = run_all(model, targets, parse_repos(repos, targets), settings, jobs, progress.note)
    err.print(f"[bold]fan-out[/] {result.id} (onboard show {result.id})")
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        out.print(table(result))
    # 0 when every target ended with a PR; a partial result still reports every row.
    raise typer.Exit(0 if all(r.outcome == "pr" for r in result.rows) else 1)


def show(result, as_json: bool) -> None:
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        out.print(table(result))
