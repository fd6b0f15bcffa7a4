"""`onboard bench sweep`: a sweep of a few types, and where its time went, stage by stage.

It runs the real sweep (job processes, sandbox, repository tests) into --data-dir, or, with --from,
only reads an earlier sweep's reports: the same split for a run made by another build of Onboarder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agent.cli.output import err, out
from tools.targets import DEFAULT_TARGET


def _table(split: dict, title: str) -> Table:
    """One row per type, longest first, and a sum row: a whole-gap sweep has 60+ types, which as columns
    no terminal can show."""
    from agent.nightly.split import STAGES

    table = Table("type", "status", *STAGES, "total", title=title)
    for name, v in sorted(split["types"].items(), key=lambda kv: -kv[1]["total"]):
        table.add_row(name, v["status"], *(f"{v[s]:.1f}" for s in (*STAGES, "total")))
    table.add_row("sum", "", *(f"{split['sum'][s]:.1f}" for s in (*STAGES, "total")), style="bold")
    return table


def bench_sweep(
    target: str = typer.Option(DEFAULT_TARGET, "--target"),
    repo: Optional[str] = typer.Option(None, "--repo", help="target repository URL or local checkout"),
    only: list[str] = typer.Option([], "--only", help="model types (comma-separated or repeated)"),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="where the sweep writes (a fresh dir is "
                                            "a cold run: mirrors and tiny models are built)"),
    from_run: Optional[Path] = typer.Option(None, "--from", help="only print the split of an earlier sweep: "
                                            "its data dir or summary.json"),
) -> None:
    """Run a sweep of --only types (or read one with --from) and print seconds per stage and type."""
    from agent.cli.main import fail, settings_for
    from agent.nightly.split import latest_summary, sweep_split
    from tools.errors import EnvironmentProblem, UserError

    import json

    try:
        if from_run is not None:
            path = latest_summary(from_run.expanduser().resolve(), target)
            summary = json.loads(path.read_text())
        else:
            from agent.nightly.settings import NightlySettings
            from agent.nightly.sweep import Options, sweep

            types = [t.strip() for item in only for t in item.split(",") if t.strip()]
            if not types:
                raise UserError("name the types to sweep with --only a,b,c (or read a run with --from)")
            nset = NightlySettings(target=target, repo=repo, jobs=jobs, since_days=0)
            settings = settings_for(data_dir)
            result = sweep(Options(target=target, repo=repo, only=types, jobs=jobs, since_days=0), settings, nset,
                           progress=lambda m: err.print(f"[dim]  · {m}[/dim]", highlight=False))
            summary = result.summary
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    except (FileNotFoundError, ValueError) as exc:
        fail(UserError(str(exc)))
    split = sweep_split(summary)
    if not split["types"]:
        fail(UserError("the sweep attempted no type (all skipped): nothing to split"))
    table = _table(split, f"bench sweep {summary.get('target')} {summary.get('run_id')}: "
                          f"--jobs {split['jobs']}, wall {split['wall_s']:.0f} s")
    # at its natural width even in a narrow terminal or a pipe: squeezed, the numbers become "…"
    natural = out.measure(table, options=out.options.update_width(1000)).maximum
    Console(file=out.file, width=max(out.width, natural), emoji=False).print(table)
    out.print(f"wall {split['wall_s']:.1f} s for {len(split['types'])} types with --jobs {split['jobs']}; "
              f"sum of per-type times {split['sum']['total']:.1f} s")
