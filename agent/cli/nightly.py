"""`onboard nightly`: sweep every architecture the target does not support yet.

Exit codes fit cron, systemd timers and CI: 0 when the sweep ran (whatever
each type's outcome), 2 for bad input, 3 when another sweep holds the lock or
the machine lacks something, 1 when the sweep itself failed, 130 when interrupted.
"""

from __future__ import annotations

import signal
import traceback
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from agent.cli.output import err, out, print_json


def _types(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def nightly(
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="target framework, or all (default from settings)"),
    repo: Optional[str] = typer.Option(None, "--repo", help="target repository URL or local path"),
    only: list[str] = typer.Option([], "--only", help="model types to consider (comma-separated or repeated)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="at most N types are attempted"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="parallel jobs (default 2)"),
    since: Optional[float] = typer.Option(None, "--since", help="skip types attempted with the same inputs "
                                                                 "within DAYS (default 7; 0 retries all)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="state, caches, reports (env ONBOARD_DATA_DIR)"),
    schedule: bool = typer.Option(False, "--schedule", help="stay in the foreground and sweep on the settings' cron"),
    enqueue: bool = typer.Option(False, "--enqueue", help="scale mode: plan the gap and queue one job per type "
                                                          "for `onboard worker`s instead of running them here"),
    device: Optional[str] = typer.Option(None, "--device", help="with --enqueue: only workers with this device "
                                                                "label run the jobs"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Try every model type with a causal-LM class that TARGET does not register; report each one's status."""
    from agent.cli.main import fail, settings_for
    from tools.errors import EnvironmentProblem, UserError
    from agent.nightly.settings import NightlySettings
    from agent.nightly.store import SweepBusy
    from agent.nightly.sweep import Options, sweep

    try:
        if limit is not None and limit < 0:
            raise UserError("--limit must be >= 0")
        if since is not None and since < 0:
            raise UserError("--since must be >= 0 days")
        try:
            overrides = {k: v for k, v in {"target": target, "repo": repo, "jobs": jobs,
                                            "since_days": since}.items() if v is not None}
            nset = NightlySettings(**overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UserError(f"invalid nightly setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        settings = settings_for(data_dir)
        if nset.target == "all" and (schedule or nset.repo):
            raise UserError("--target all sweeps each target's default repository, once: not with --repo or "
                            "--schedule (schedule one sweep per target)")
        if schedule:
            from agent.nightly.schedule import run_forever, trigger

            trigger(nset)  # a bad cron expression is bad input: exit 2 before anything starts
            err.print(f"nightly sweep of {nset.target} on cron {nset.cron!r} ({nset.timezone}); Ctrl-C stops")
            run_forever(settings, nset)
            return
        if enqueue:
            from agent.scale.devices import check_device
            from agent.scale.nightly import enqueue_nightly

            queued = enqueue_nightly(Options(target=nset.target, repo=nset.repo, only=_types(only), limit=limit,
                                             jobs=nset.jobs, since_days=nset.since_days),
                                     settings, nset, device=check_device(device),
                                     progress=lambda m: err.print(f"[dim]  · {m}[/dim]", highlight=False))
            if as_json:
                print_json(queued)
            else:
                for row in queued["jobs"]:
                    out.print(f"{row['model_type']:>24}  {row['job']}  {row['status']}"
                              f"{'' if row['created'] else ' (already queued)'}", highlight=False)
            return
        elif device is not None:
            raise UserError("--device needs --enqueue")
        # A supervisor's SIGTERM ends the sweep like Ctrl-C: jobs stopped, report written, exit 130.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            if nset.target == "all":
                _sweep_every_target(nset, settings, _types(only), limit, as_json)
                return
            opts = Options(target=nset.target, repo=nset.repo, only=_types(only), limit=limit, jobs=nset.jobs,
                           since_days=nset.since_days)
            result = sweep(opts, settings, nset, progress=lambda m: err.print(f"[dim]  · {m}[/dim]", highlight=False))
        finally:
            signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt:
        err.print("interrupted; the next `onboard nightly` resumes the unfinished types")
        raise typer.Exit(130)
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    except SweepBusy as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(3)
    except Exception as exc:  # noqa: BLE001 - the sweep itself failed: one line here, the trace on disk
        try:
            trace = settings_for(data_dir).path("nightly", "last-error.txt")
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(traceback.format_exc())
        except (OSError, UserError):
            trace = "not written"
        err.print(f"[red]error:[/red] nightly sweep failed: {type(exc).__name__}: {exc} (trace in {trace})",
                  highlight=False)
        raise typer.Exit(1)
    _show(result, as_json)


def _sweep_every_target(nset, settings, only: list[str], limit: int | None, as_json: bool) -> None:
    """One sweep per registered target, one after another (each holds its own lock and budget); a target
    whose sweep cannot run ends its own line and the others still sweep. Exit 0 only when every one ran."""
    from agent.nightly.store import SweepBusy
    from agent.nightly.sweep import Options, sweep
    from tools.errors import EnvironmentProblem, UserError
    from tools.targets import names

    done, failed = {}, {}
    for key in names():
        err.print(f"[bold]nightly {key}[/]")
        opts = Options(target=key, repo=None, only=only, limit=limit, jobs=nset.jobs, since_days=nset.since_days)
        try:
            result = sweep(opts, settings, nset.model_copy(update={"target": key}),
                           progress=lambda m, k=key: err.print(f"[dim]  · [{k}] {m}[/dim]", highlight=False))
        except (UserError, EnvironmentProblem, SweepBusy) as exc:
            failed[key] = " ".join(str(exc).split())
            err.print(f"[red]{key}: {failed[key]}[/red]", highlight=False)
            continue
        done[key] = result
        if not as_json:
            _show(result, False)
    if as_json:
        print_json({"targets": {k: {"run_id": r.summary["run_id"], "counts": r.summary["counts"],
                                    "wall_s": r.summary["wall_s"]} for k, r in done.items()},
                    "failed": failed})
    else:
        for key, why in failed.items():
            out.print(f"{key}: sweep did not run: {why}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _show(result, as_json: bool) -> None:
    from rich.table import Table

    s = result.summary
    if as_json:
        print_json({"run_id": s["run_id"], "counts": s["counts"], "wall_s": s["wall_s"],
                    "budget": s["budget"], "paths": {k: str(v) for k, v in result.paths.items()}})
        return
    t = Table("status", "types", title=f"nightly {s['target']} {s['run_id']}: {len(s['rows'])} types, "
                                       f"{s['wall_s']:.0f} s")
    for status, n in s["counts"].items():
        t.add_row(status, str(n))
    out.print(t)
    if s["budget"]["stopped"]:
        out.print(f"global budget: {s['budget']['stopped']}; no new types were started after that")
    for kind, path in result.paths.items():
        out.print(f"{kind:>8}: {path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("nightly")(nightly)
