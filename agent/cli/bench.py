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
                 ("int8 export", vt.get("int8_export", 0.0)),
                 ("precision matrix", vt.get("precision_matrix", 0.0)),
                 ("tests", sum(v for k, v in vt.items() if k == "tests" or k.startswith("tests:"))),
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
    matrix_overhead: bool = typer.Option(False, "--matrix-overhead",
                                         help="run twice, with and without the precision matrix, and compare"),
) -> None:
    """End-to-end time of one S1 onboarding with warm caches (a throwaway job dir)."""
    from agent.cli.main import fail, settings_for
    from tools.errors import UserError

    base = settings_for(data_dir, sandbox=sandbox)
    variants = [True, False] if matrix_overhead else [base.precision_matrix]
    totals = {}
    for matrix in variants:
        settings = base.model_copy(update={"precision_matrix": matrix})
        try:
            prepared, rows, total, state = _s1_once(settings, model, target, repo, sandbox)
        except UserError as exc:
            fail(exc)
        label = "with" if matrix else "without"
        table = Table("stage", "seconds", title=f"bench s1 {model} → {target} ({state.get('outcome')}), "
                                                f"{label} the precision matrix")
        table.add_row("prepare (workspace, config)", f"{prepared:.2f}")
        for name, secs in rows:
            table.add_row(name, f"{secs:.2f}")
        table.add_row("[bold]end to end[/]", f"[bold]{total:.2f}[/]")
        out.print(table)
        # The first variant may pay a cold workspace cache in `prepare`: the comparison leaves it out.
        totals[label] = total - prepared
        if state.get("outcome") != "pr":
            err.print(f"[yellow]outcome {state.get('outcome')}: {state.get('message')}[/]")
            raise typer.Exit(1)
    if len(totals) == 2:
        out.print(f"precision matrix adds {totals['with'] - totals['without']:+.1f} s to the run after prepare "
                  f"({totals['with']:.1f} s with, {totals['without']:.1f} s without)")


def _s1_once(settings, model: str, target: str, repo: Optional[str], sandbox: Optional[str]):
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    scratch = Path(tempfile.mkdtemp(prefix="onboard-bench-"))
    # Jobs, records and checkpoints go to scratch; mirrors, tiny models and indexes stay warm.
    settings = settings.model_copy(update={"data_dir": scratch, "cache_dir": settings.caches})
    try:
        start = time.monotonic()
        job = prepare(Request(model=model, target=target, repo=repo, sandbox=sandbox), settings)
        prepared = time.monotonic() - start
        deps = make_deps(settings, job.target, lambda m: None)
        state, _ = drive(settings, deps, job.thread_id, job.initial_state)
        total = time.monotonic() - start
        return prepared, _stage_rows(state), total, state  # the rows read reports in scratch: before removal
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


BENCH_TYPES = "apertus,helium,ministral,nanochat,olmo3,seed_oss,doge,exaone_moe"


@bench.command("scale")
def bench_scale_cmd(
    only: str = typer.Option(BENCH_TYPES, "--only", help="the nightly subset (comma-separated, at least 8)"),
    target: str = typer.Option(DEFAULT_TARGET, "--target"),
    workers: str = typer.Option("1,2", "--workers", help="worker counts to compare"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="shared caches (env ONBOARD_CACHE_DIR)"),
    timeout: float = typer.Option(7200, "--timeout", help="seconds per worker count"),
    out_json: Optional[Path] = typer.Option(None, "--out"),
) -> None:
    """1 vs 2 Celery workers on this machine: jobs/hour and enqueue→start latency (starts its own servers)."""
    import os

    from agent.cli.main import fail
    from tools.errors import UserError

    types = [t.strip() for t in only.split(",") if t.strip()]
    try:
        counts = [int(c) for c in workers.split(",")]
        if len(types) < 8:
            raise UserError("--only: the bench needs at least 8 types")
        if not counts or min(counts) < 1:
            raise UserError("--workers: positive counts, e.g. 1,2")
        from agent.scale.bench import bench_scale
    except ValueError:
        fail(UserError("--workers: comma-separated integers, e.g. 1,2"))
    except ImportError as exc:
        fail(UserError(f"scale mode is not installed ({exc.name} missing): pip install -r requirements-scale.lock"))
    except UserError as exc:
        fail(exc)
    cache = (cache_dir or Path(os.environ.get("ONBOARD_CACHE_DIR") or tempfile.mkdtemp(prefix="onboard-cache-")))
    result = bench_scale(types, target, counts, cache.resolve(), timeout,
                         progress=lambda m: err.print(f"[dim]  · {m}[/dim]", highlight=False))
    table = Table("workers", "jobs", "wall s", "jobs/h", "enqueue→start idle s", "median s", "max s", "outcomes")
    for r in result["runs"]:
        table.add_row(str(r["workers"]), str(r["jobs"]), str(r["wall_s"]), str(r["jobs_per_hour"]),
                      ", ".join(map(str, r["latency_idle_s"])), str(r["latency_median_s"]), str(r["latency_max_s"]),
                      json.dumps(r["outcomes"]))
    out.print(table)
    runs = {r["workers"]: r for r in result["runs"]}
    if 1 in runs and 2 in runs:
        gain = runs[2]["jobs_per_hour"] / runs[1]["jobs_per_hour"]
        idle = max(runs[1]["latency_idle_s"] or [0.0])
        out.print(f"2 workers on these {result['cpus']} cores: x{gain:.2f} of 1 worker. Each added worker on its own "
                  f"2-core machine adds about {runs[1]['jobs_per_hour']} jobs/h (one worker's rate; enqueue to start "
                  f"on an idle worker took {idle} s). Jobs cut by the per-type budget count as done: compare outcomes.")
    if out_json:
        out_json.write_text(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    from agent.cli.bench_history import bench_history
    from agent.cli.bench_precision import bench_precision
    from agent.cli.bench_references import bench_references
    from agent.cli.bench_sweep import bench_sweep

    bench.command("references")(bench_references)
    bench.command("precision")(bench_precision)
    bench.command("sweep")(bench_sweep)
    bench.command("history")(bench_history)
    app.add_typer(bench, name="bench")
