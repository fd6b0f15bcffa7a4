"""`onboard bench history`: how often our onboarding makes the change the target's engineers made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agent.cli.output import err, out
from tools.targets import DEFAULT_TARGET


def bench_history(
    target: str = typer.Option(DEFAULT_TARGET, "--target", "-t"),
    repo: Optional[str] = typer.Option(None, "--repo", help="checkout with git history (default: the target's)"),
    last: int = typer.Option(10, "--last", min=1, help="the N newest onboarding commits"),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="onboardings at once"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    no_run: bool = typer.Option(False, "--no-run", help="report the rows finished so far; replay nothing"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay the last N onboardings of TARGET's history and compare ours with upstream's (resumable)."""
    from agent.bench import report
    from agent.bench.history import Options, run
    from agent.cli.main import fail, settings_for
    from tools.errors import EnvironmentProblem, UserError
    from tools.repo.workspace import RepoUnavailable, normalise_repo
    from tools.targets import get_target

    try:
        settings = settings_for(data_dir)
        tgt = get_target(target, settings.caches)
        source = normalise_repo(repo) if repo else tgt.default_repo
        result = run(Options(target=target, source=source, last=last, jobs=jobs, run=not no_run), settings,
                     progress=lambda m: err.print(m, highlight=False, markup=False))
    except RepoUnavailable as exc:
        fail(UserError(str(exc)))
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    data = report.as_data(result, target, source)
    json_path, html_path = report.write(data, result.root)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    t = Table(*report.HEADERS, title=f"bench history: {target} at {result.head[:12]}")
    for cells in report.table_rows(result.rows):
        t.add_row(*cells)
    # A pipe or a log file is not an 80-column terminal: the table keeps its columns there.
    (out if out.is_terminal else Console(emoji=False, width=170)).print(t)
    for line in report.differences(result.rows):
        out.print(f"  differs: {line}", highlight=False, markup=False, soft_wrap=True)
    rates = data["agreement"]
    out.print("agreement: " + ", ".join(
        f"{name} {r['agree']}/{r['judged']}" + (f" ({r['rate']:.0%})" if r["rate"] is not None else "")
        for name, r in rates.items()), highlight=False)
    if result.passed_over:
        out.print(f"passed over {len(result.passed_over)} newer additions (outside the onboarding):",
                  highlight=False)
        for line in report.passed_over_lines(result.passed_over):
            out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    out.print(f"saved {json_path} and {html_path}", highlight=False, markup=False, soft_wrap=True)
