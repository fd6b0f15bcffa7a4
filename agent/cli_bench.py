"""`onboard bench …`: measured numbers for the closing notes, never asserted in tests."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli_output import err, out

bench = typer.Typer(no_args_is_help=True, help="Benchmarks: stage timings, coverage, overheads.")


def _stage_rows(state: dict) -> list[tuple[str, float]]:
    t = state.get("timings", {})
    rows = [("analyze", t.get("analyze", 0.0)), ("tiny build", t.get("tiny", 0.0))]
    last = max((k for k in t if k.startswith("verify[")), default=None)
    if last:
        report = json.loads(Path(state["attempts"][-1]["report"]).read_text())
        vt = report.get("timings", {})
        rows += [("export", vt.get("export", 0.0)), ("parity", vt.get("parity", 0.0)),
                 ("tests", sum(v for k, v in vt.items() if k.startswith("tests:"))),
                 ("verify (sandbox, all)", t[last])]
    rows += [("publish", t.get("publish", 0.0))]
    return rows


@bench.command("s1")
def bench_s1(
    model: str = typer.Argument("cwm"),
    target: str = typer.Option("optimum-intel", "--target"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    sandbox: Optional[str] = typer.Option(None, "--sandbox"),
) -> None:
    """End-to-end time of one S1 onboarding with warm caches (a throwaway job dir)."""
    from agent.cli import fail, settings_for
    from agent.errors import UserError
    from agent.jobs import Request, prepare
    from agent.runner import drive, make_deps

    base = settings_for(data_dir, sandbox=sandbox)
    scratch = Path(tempfile.mkdtemp(prefix="onboard-bench-"))
    # Jobs, records and checkpoints go to scratch; mirrors, tiny models and indexes stay warm.
    settings = base.model_copy(update={"data_dir": scratch, "cache_dir": base.caches})
    try:
        start = time.monotonic()
        job = prepare(Request(model=model, target=target, repo=repo, sandbox=sandbox), settings)
        prepared = time.monotonic() - start
        deps = make_deps(settings, job.target, lambda m: None)
        state, _ = drive(settings, deps, job.thread_id, job.initial_state)
        total = time.monotonic() - start
    except UserError as exc:
        fail(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table("stage", "seconds", title=f"bench s1 {model} → {target} ({state.get('outcome')})")
    table.add_row("prepare (workspace, config)", f"{prepared:.2f}")
    for name, secs in _stage_rows(state):
        table.add_row(name, f"{secs:.2f}")
    table.add_row("[bold]end to end[/]", f"[bold]{total:.2f}[/]")
    out.print(table)
    if state.get("outcome") != "pr":
        err.print(f"[yellow]outcome {state.get('outcome')}: {state.get('message')}[/]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(bench, name="bench")
