"""`onboard`: the command-line face of the graph."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from agent.cli.output import Progress, err, out, print_json, summary_table
from tools.errors import EnvironmentProblem, UserError
from agent.settings import Settings
from tools.targets import DEFAULT_TARGET

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Onboard new Hugging Face architectures into ML frameworks, verified end to end.")

DataDir = typer.Option(None, "--data-dir", help="State, caches and PR records (env ONBOARD_DATA_DIR).")


def settings_for(data_dir: Optional[Path], **overrides) -> Settings:
    try:
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            kwargs["data_dir"] = data_dir.expanduser().resolve()
        return Settings(**kwargs)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
    raise typer.Exit(getattr(exc, "exit_code", 1))


def crash(exc: Exception, settings: Settings | None, thread: str | None) -> None:
    """An unexpected error: one line for the user, the traceback in a file (state is checkpointed)."""
    import time
    import traceback

    where = ""
    if settings is not None:
        log = settings.path("logs", f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{thread or 'run'}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(traceback.format_exception(exc)))
        where = f"; traceback in {log}"
    hint = f"; `onboard resume {thread}` retries from the last finished stage" if thread else ""
    from rich.markup import escape

    err.print(f"[red]internal error:[/red] {escape(f'{type(exc).__name__}: {exc}{where}{hint}')}",
              soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def _finish(state: dict, how: str, as_json: bool) -> None:
    if how == "finished_before":
        err.print("[yellow]this request already ran to the end; showing its result (nothing repeated)[/]")
    if as_json:
        print_json({k: state.get(k) for k in ("thread_id", "outcome", "message", "attempts", "pr", "timings")})
    else:
        out.print(summary_table(state))
    raise typer.Exit(0 if state.get("outcome") == "pr" else 1)


@app.command()
def run(
    model: str = typer.Argument(..., help="model_type, path to config.json or model dir, or Hub id"),
    target: str = typer.Option(DEFAULT_TARGET, "--target", "-t"),
    repo: Optional[str] = typer.Option(None, "--repo", help="target repository URL or local path"),
    ref: Optional[str] = typer.Option(None, "--ref", help="branch, tag or commit of the target"),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | local | docker"),
    reference: list[str] = typer.Option([], "--reference", help="reference PR number or revision (repeatable)"),
    data_dir: Optional[Path] = DataDir,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Onboard MODEL into TARGET; exits 0 only when a verified PR record was produced."""
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    settings, thread = None, None
    try:
        settings = settings_for(data_dir, sandbox=sandbox)
        progress = Progress()
        job = prepare(Request(model=model, target=target, repo=repo, ref=ref, sandbox=sandbox,
                              references=reference), settings, progress.note)
        thread = job.thread_id
        err.print(f"[bold]thread[/] {job.thread_id}")
        deps = make_deps(settings, job.target, progress.note)
        state, how = drive(settings, deps, job.thread_id, job.initial_state, progress.node)
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001 - the user gets one line and a log, never a traceback
        crash(exc, settings, thread)
    _finish(state, how, as_json)


@app.command()
def resume(thread: str, data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """Continue an interrupted run from its last finished stage."""
    from agent.graph.run import drive, make_deps, stored_state

    try:
        settings = settings_for(data_dir)
        values = stored_state(settings, thread)
        if not values:
            raise UserError(f"no run with thread id {thread} in {settings.data_dir}")
        progress = Progress()
        deps = make_deps(settings, values["request"]["target"], progress.note)
        state, how = drive(settings, deps, thread, None, progress.node)
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    except Exception as exc:  # noqa: BLE001
        crash(exc, locals().get("settings"), thread)
    _finish(state, how, as_json)


@app.command()
def show(thread: str, data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """The report of a run."""
    from agent.graph.run import job_dir, stored_state

    try:
        settings = settings_for(data_dir)
        report = job_dir(settings, thread) / "report.json"
        if report.exists():
            state = json.loads(report.read_text())
        else:
            state = stored_state(settings, thread)
            if not state:
                raise UserError(f"no run with thread id {thread} in {settings.data_dir}")
            err.print("[yellow]run not finished: showing its last checkpoint (onboard resume to finish)[/]")
    except UserError as exc:
        fail(exc)
    if as_json:
        print_json(state)
    else:
        out.print(summary_table(state))
        for line in state.get("advice") or []:
            out.print(f"  needs change: {line}")


@app.command()
def prs(data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """PR records produced so far."""
    from rich.table import Table

    from tools.forge.local import LocalForge

    try:
        settings = settings_for(data_dir)
    except UserError as exc:
        fail(exc)
    records = LocalForge(settings.data_dir).records()
    if as_json:
        print_json([r.model_dump(mode="json") for r in records])
        return
    t = Table("target", "model", "branch", "remote", "diff", "verification")
    for r in records:
        v = r.verification
        t.add_row(r.target, r.model_type, r.branch, r.remote, r.diff_path,
                  ", ".join(f"{k}={val if not isinstance(val, float) else f'{val:.1e}'}" for k, val in v.items()))
    out.print(t)


@app.command()
def targets() -> None:
    """Targets this build knows."""
    from tools.targets import names as target_names

    for name in target_names():
        out.print(name)


def _mount_commands() -> None:
    # Command groups live in their own modules; an import error there must fail loudly, not hide them.
    from agent.cli import analyze as cli_analysis
    from agent.cli import bench as cli_bench
    from agent.cli import trajectory as cli_llm
    from agent.cli import nightly as cli_nightly
    from agent.cli import references as cli_references
    from agent.cli import sandbox as cli_sandbox
    from agent.cli import serve as cli_serve

    for mod in (cli_analysis, cli_sandbox, cli_bench, cli_references, cli_llm, cli_serve, cli_nightly):
        mod.register(app)


_mount_commands()


def main() -> None:  # pragma: no cover - console script entry
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; `onboard resume THREAD` continues from the last finished stage")
        sys.exit(130)
