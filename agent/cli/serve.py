"""`onboard serve` (the HTTP service) and `onboard bench service` (its webhook load check)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli.output import err, out


def _service_settings(**overrides):
    from pydantic import ValidationError

    from tools.errors import UserError
    from agent.service.settings import ServiceSettings
    from tools.forge.github import GitHubConfig

    try:
        return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None}), GitHubConfig()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"invalid service setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="bind address (env ONBOARD_SERVICE_HOST)"),
    port: Optional[int] = typer.Option(None, "--port", help="port (env ONBOARD_SERVICE_PORT)"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="jobs run at once"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="state, queue and caches"),
) -> None:
    """Serve chat-ops, GitHub webhooks and the jobs API; endpoints without their secret stay disabled."""
    import sqlite3

    import uvicorn

    from agent.cli.main import fail, settings_for
    from agent.cli.checks import check_database
    from tools.errors import UserError
    from agent.service.app import build_service, create_app
    from agent.service.http_limits import server_options
    from agent.service.settings import endpoint_status

    try:
        settings = settings_for(data_dir)
        svc, gh = _service_settings(host=host, port=port, concurrency=concurrency)
        # Both state databases are checked before the queue opens (and creates) anything.
        queue_path = svc.queue_path or settings.path("service", "jobs.sqlite")
        for db in (queue_path, settings.path("checkpoints.sqlite")):
            check_database(db)
        try:
            service = build_service(settings, svc, gh)  # refuses the local sandbox unless allowed
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{queue_path} is unreadable ({exc}); move it aside to start afresh") from None
    except UserError as exc:
        fail(exc)
    err.print(f"[bold]onboard serve[/] on http://{svc.host}:{svc.port}", highlight=False)
    for e in endpoint_status(svc, gh):
        # One line each, unwrapped: operators grep these in service logs.
        state = "[green]enabled [/]" if e.enabled else "[red]disabled[/]"
        err.print(f"  {state} {e.route} — {e.why}", soft_wrap=True, highlight=False)
    err.print(f"sandbox {service.settings.sandbox}; queue {service.queue.path}; {svc.concurrency} worker(s); "
              "unfinished jobs resume on start", soft_wrap=True, highlight=False)
    err.print(f"limits: bodies {svc.max_body_bytes} bytes in {svc.body_timeout_s:g} s, headers in "
              f"{svc.header_timeout_s:g} s, {svc.max_connections} connections", soft_wrap=True, highlight=False)
    uvicorn.run(create_app(service), host=svc.host, port=svc.port, log_level="info", access_log=False,
                **server_options(svc))


def bench_service(
    deliveries: int = typer.Option(200, "--deliveries", help="webhook deliveries to send"),
    clients: int = typer.Option(8, "--clients", help="concurrent senders"),
    concurrency: int = typer.Option(1, "--concurrency", help="service workers during the load"),
    budget_s: float = typer.Option(10.0, "--budget", help="seconds the whole load may take"),
) -> None:
    """Signed webhook deliveries (half of them duplicates) against `onboard serve` on loopback."""
    from agent.service.bench import run_bench

    result = run_bench(deliveries=deliveries, clients=clients, concurrency=concurrency)
    table = Table("measure", "value", title=f"bench service: {deliveries} signed deliveries, {clients} clients")
    for key, value in result.rows():
        table.add_row(key, value)
    out.print(table)
    problems = result.problems(budget_s)
    for p in problems:
        err.print(f"[red]{p}[/]")
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    try:
        from agent.cli.bench import bench
    except ImportError:  # no bench group in this build: the load check hangs off its own group
        bench = typer.Typer(no_args_is_help=True, help="Benchmarks.")
        app.add_typer(bench, name="bench")
    bench.command("service")(bench_service)
