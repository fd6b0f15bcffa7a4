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

from agent.cli.output import err, out
from tools.targets import DEFAULT_TARGET

bench = typer.Typer(no_args_is_help=True, help="Benchmarks: stage timings, coverage, overheads.")


def _stage_rows(state: dict) -> list[tuple[str, float]]:
    t = state.get("timings", {})
    rows = [("analyze", t.get("analyze", 0.0)), ("tiny build", t.get("tiny", 0.0))]
    last = max((k for k in t if k.startswith("verify[")), default=None)
    if last and state.get("attempts"):
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
    target: str = typer.Option(DEFAULT_TARGET, "--target"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    sandbox: Optional[str] = typer.Option(None, "--sandbox"),
) -> None:
    """End-to-end time of one S1 onboarding with warm caches (a throwaway job dir)."""
    from agent.cli.main import fail, settings_for
    from tools.errors import UserError
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

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
        rows = _stage_rows(state)  # reads the reports in scratch: before it is removed
    except UserError as exc:
        fail(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table("stage", "seconds", title=f"bench s1 {model} → {target} ({state.get('outcome')})")
    table.add_row("prepare (workspace, config)", f"{prepared:.2f}")
    for name, secs in rows:
        table.add_row(name, f"{secs:.2f}")
    table.add_row("[bold]end to end[/]", f"[bold]{total:.2f}[/]")
    out.print(table)
    if state.get("outcome") != "pr":
        err.print(f"[yellow]outcome {state.get('outcome')}: {state.get('message')}[/]")
        raise typer.Exit(1)


def _verify_seconds(settings, model: str, target: str, repo: Optional[str], sandbox: str) -> tuple[float, str]:
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    scratch = Path(tempfile.mkdtemp(prefix="onboard-bench-"))
    try:
        run = settings.model_copy(update={"data_dir": scratch, "cache_dir": settings.caches, "sandbox": sandbox})
        job = prepare(Request(model=model, target=target, repo=repo, sandbox=sandbox), run)
        state, _ = drive(run, make_deps(run, job.target, lambda m: None), job.thread_id, job.initial_state)
        last = max((k for k in state.get("timings", {}) if k.startswith("verify[")), default=None)
        return (state["timings"][last] if last else float("nan")), state.get("outcome", "?")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@bench.command("sandbox")
def bench_sandbox_cmd(
    runs: int = typer.Option(10, "--runs", help="trivial commands per backend"),
    model: str = typer.Argument("cwm", help="model whose verification job is timed on both backends"),
    target: str = typer.Option(DEFAULT_TARGET, "--target"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    skip_job: bool = typer.Option(False, "--skip-job", help="only the per-command overhead"),
) -> None:
    """Per-command overhead (create → remove) and the verification job, docker vs local."""
    from agent.cli.main import fail, settings_for
    from tools.errors import EnvironmentProblem, UserError
    from sandboxes.bench import bench_sandbox

    settings = settings_for(data_dir)
    numbers = bench_sandbox(runs=runs)
    table = Table("measure", "local", "docker", title=f"bench sandbox ({runs} runs of `true`, median)")
    b = numbers["backends"]

    def cell(kind: str, key: str = "median_s") -> str:
        row = b.get(kind, {})
        return f"{row[key]:.3f} s" if key in row else (row.get("skipped") or row.get("error") or "-")[:60]

    table.add_row("per command (median)", cell("local"), cell("docker"))
    table.add_row("per command (p90)", cell("local", "p90_s"), cell("docker", "p90_s"))
    jobs = {}
    if not skip_job:
        for kind in ("local", "docker"):
            if "skipped" in b.get(kind, {}):
                continue
            try:
                jobs[kind] = _verify_seconds(settings, model, target, repo, kind)
            except (UserError, EnvironmentProblem) as exc:
                fail(exc)
        table.add_row(f"verification job ({model})",
                      *(f"{jobs[k][0]:.1f} s ({jobs[k][1]})" if k in jobs else "-" for k in ("local", "docker")))
    out.print(table)
    if "local" in jobs and "docker" in jobs and jobs["local"][0] > 0:
        out.print(f"docker / local, verification job: {jobs['docker'][0] / jobs['local'][0]:.2f}x; "
                  f"docker overhead per command: {numbers.get('docker_over_local_s', float('nan')):+.3f} s")


@bench.command("tiny")
def bench_tiny_cmd(
    types: list[str] = typer.Argument(None, help="model types (default with --all: every causal-LM type)"),
    all_types: bool = typer.Option(False, "--all", help="every model_type with a causal-LM class"),
    workers: int = typer.Option(1, "--workers", "-j"),
    timeout: float = typer.Option(240.0, "--timeout", help="seconds per type"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    fresh: bool = typer.Option(True, "--fresh/--warm", help="build into an empty cache (default) or reuse"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Tiny-model coverage: build + validate per type, median/max build time, peak RSS."""
    from agent.cli.main import fail, settings_for
    from tools.errors import UserError
    from tools.tiny.bench import bench_tiny_all

    if not all_types and not types:
        fail(UserError("name model types or pass --all"))
    settings = settings_for(data_dir)
    cache = Path(tempfile.mkdtemp(prefix="onboard-bench-tiny-")) if fresh else settings.caches / "tiny"

    def progress(row: dict) -> None:
        err.print(f"  {row['model_type']:<28} {row['status']:<8} {row.get('seconds', 0):6.1f}s "
                  f"{(row.get('reason') or '')[:90]}", highlight=False, markup=False)

    try:
        result = bench_tiny_all(cache, None if all_types else types, timeout_s=timeout, workers=workers,
                                progress=progress)
    finally:
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "rows"} | {"rows": result["rows"]}, indent=2))
        return
    table = Table("measure", "value", title="bench tiny")
    for key in ("total", "ok", "failed", "excluded", "coverage", "median_seconds", "max_seconds",
                "median_build_seconds", "max_build_seconds", "peak_rss_mb", "wall_seconds"):
        table.add_row(key, str(result.get(key)))
    out.print(table)
    for name, why in {**result["failures"], **result["exclusions"]}.items():
        out.print(f"  {name}: {why}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    from agent.cli.bench_history import bench_history
    from agent.cli.bench_references import bench_references

    bench.command("references")(bench_references)
    bench.command("history")(bench_history)
    app.add_typer(bench, name="bench")
