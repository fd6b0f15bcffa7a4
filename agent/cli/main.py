"""`onboard`: the command-line face of the graph."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer
import typer.core
from pydantic import ValidationError

from agent.cli.checks import check_data_dir, check_database, check_thread_id
from agent.cli.output import Progress, err, out, print_json, summary_table
from tools.errors import EnvironmentProblem, UserError
from agent.settings import Settings
from tools.targets import DEFAULT_TARGET


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a missing argument, a bad --port) as one line, exit 2, like every
    other bad input; click's own rendering is a boxed, multi-line block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError:
            return super().main(args, prog_name, complete_var, standalone_mode=True, **extra)  # the help
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            err.print(f"[red]error:[/red] {one_line(exc.format_message().rstrip('.') + hint)}", soft_wrap=True,
                      highlight=False)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            err.print(f"[red]error:[/red] {one_line(exc.format_message())}", soft_wrap=True, highlight=False)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            err.print("interrupted; `onboard resume THREAD` continues from the last finished stage")
            sys.exit(130)
        except (UserError, EnvironmentProblem) as exc:  # a command that let one through: still one line
            err.print(f"[red]error:[/red] {one_line(exc)}", soft_wrap=True, highlight=False)
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="Onboard new Hugging Face architectures into ML frameworks, verified end to end.")

DataDir = typer.Option(None, "--data-dir", help="State, caches and PR records (env ONBOARD_DATA_DIR).")


def settings_for(data_dir: Optional[Path], *, writes: bool = True, **overrides) -> Settings:
    """Settings for a command; `writes=False` for commands that only read the data dir."""
    try:
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            kwargs["data_dir"] = data_dir.expanduser().resolve()
        settings = Settings(**kwargs)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    except (OSError, RuntimeError) as exc:  # resolve(): a symlink loop, a vanished cwd
        raise UserError(f"invalid --data-dir {data_dir}: {exc}") from None
    check_data_dir(settings.data_dir, writes=writes)
    if settings.cache_dir is not None:
        check_data_dir(settings.cache_dir, writes=writes, what="cache dir")
    return settings


def one_line(text: str) -> str:
    from rich.markup import escape

    # User input (paths, refs, JSON) ends up in messages: neither a newline nor rich markup may survive.
    return escape(" ".join(str(text).split()))


def fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {one_line(exc)}", soft_wrap=True, highlight=False)
    raise typer.Exit(getattr(exc, "exit_code", 1))


def _save_traceback(exc: BaseException, settings: Settings | None, thread: str | None) -> str:
    """Where the traceback went, or why it could not be kept: a full disk must not turn into a traceback."""
    import tempfile
    import time
    import traceback

    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{thread or 'run'}.log"
    dirs = ([settings.path("logs")] if settings is not None else []) + [Path(tempfile.gettempdir())]
    problem = ""
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            log = d / (name if d != dirs[-1] else f"onboard-{name}")
            log.write_text("".join(traceback.format_exception(exc)))
            return f"; traceback in {log}"
        except (OSError, ValueError) as why:
            problem = problem or f"{getattr(why, 'strerror', None) or why}"
    return f"; traceback not saved ({problem})"


def crash(exc: Exception, settings: Settings | None, thread: str | None) -> None:
    """An unexpected error: one line for the user, the traceback in a file (state is checkpointed)."""
    where = _save_traceback(exc, settings, thread)
    hint = f"; `onboard resume {thread}` retries from the last finished stage" if thread else ""
    err.print(f"[red]internal error:[/red] {one_line(f'{type(exc).__name__}: {exc}{where}{hint}')}",
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
    target: str = typer.Option(DEFAULT_TARGET, "--target", "-t", help="a target, or all (every registered one)"),
    repo: Optional[list[str]] = typer.Option(None, "--repo", help="target repository URL or local path "
                                             "(with --target all: KEY=URL_OR_PATH, repeatable)"),
    ref: Optional[str] = typer.Option(None, "--ref", help="branch, tag or commit of the target"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1,
                                       help="with --target all: targets run at once (default: all of them)"),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | local | docker"),
    reference: list[str] = typer.Option([], "--reference", help="reference PR number or revision (repeatable)"),
    devices: Optional[str] = typer.Option(None, "--devices", help="CPU,GPU,NPU to verify on (env ONBOARD_DEVICES; "
                                          "default: what the runtime reports; absent ones are skipped rows)"),
    data_dir: Optional[Path] = DataDir,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Onboard MODEL into TARGET; exits 0 only when a verified PR record was produced."""
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    settings, thread = None, None
    try:
        settings = settings_for(data_dir, sandbox=sandbox, devices=devices)
        check_database(settings.path("checkpoints.sqlite"))
        if target == "all":
            from agent.cli.fanout import run_every_target

            if ref or reference:
                raise UserError("--ref and --reference name one target's history: not with --target all")
            run_every_target(model, repo or [], settings, jobs, as_json)
        if repo and len(repo) > 1:
            raise UserError("--repo is given once for one target (KEY=PATH pairs are for --target all)")
        repo = repo[0] if repo else None
        progress = Progress()
        job = prepare(Request(model=model, target=target, repo=repo, ref=ref, sandbox=sandbox,
                              references=reference), settings, progress.note)
        thread = job.thread_id
        err.print(f"[bold]thread[/] {job.thread_id}")
        deps = make_deps(settings, job.target, progress.note)
        state, how = drive(settings, deps, job.thread_id, job.initial_state, progress.node)
    except (UserError, EnvironmentProblem) as exc:
        fail(exc)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the user gets one line and a log, never a traceback
        crash(exc, settings, thread)
    _finish(state, how, as_json)


@app.command()
def resume(thread: str, data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """Continue an interrupted run from its last finished stage."""
    from agent.graph.run import drive, make_deps, stored_state

    try:
        check_thread_id(thread)
        settings = settings_for(data_dir)
        check_database(settings.path("checkpoints.sqlite"))
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


def _read_report(report: Path) -> dict:
    # report.json is ours, but a hand edit or a link to a device must not hang or crash `show`.
    if not report.is_file() or report.is_symlink():
        raise UserError(f"{report} is not a regular file")
    try:
        state = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UserError(f"{report} is unreadable: {exc}") from None
    if not isinstance(state, dict):
        raise UserError(f"{report} is not a run report (expected a JSON object)")
    return state


@app.command()
def show(thread: str, data_dir: Optional[Path] = DataDir, as_json: bool = typer.Option(False, "--json")) -> None:
    """The report of a run."""
    from agent.graph.run import job_dir, stored_state

    try:
        check_thread_id(thread)
        settings = settings_for(data_dir, writes=False)
        if thread.startswith("all-"):
            from agent.cli import fanout
            from agent.graph.fanout import load

            result = load(settings, thread)
            if result is None:
                raise UserError(f"no fan-out run {thread} in {settings.data_dir}")
            fanout.show(result, as_json)
            return
        report = job_dir(settings, thread) / "report.json"
        if os.path.lexists(report):
            state = _read_report(report)
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
        settings = settings_for(data_dir, writes=False)
        records = LocalForge(settings.data_dir).records()
    except UserError as exc:
        fail(exc)
    except (OSError, ValueError) as exc:  # a PR record someone edited by hand, or unreadable
        fail(UserError(f"cannot read the PR records in {settings.data_dir}/prs: {exc}"))
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
    from agent.cli import worker as cli_worker

    for mod in (cli_analysis, cli_sandbox, cli_bench, cli_references, cli_llm, cli_serve, cli_nightly, cli_worker):
        mod.register(app)


_mount_commands()


def main() -> None:  # pragma: no cover - console script entry
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; `onboard resume THREAD` continues from the last finished stage")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - never a traceback on the terminal
        try:
            crash(exc, None, None)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":  # pragma: no cover - `python -m agent.cli.main`
    main()
