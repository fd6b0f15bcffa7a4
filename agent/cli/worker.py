"""`onboard worker`: a Celery worker that runs ledger jobs (scale mode only)."""

from __future__ import annotations

import socket
from typing import Optional

import typer


def worker(
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64,
                                    help="jobs at once (one process each; ~2 cores per job)"),
    device: Optional[str] = typer.Option(None, "--device", help="also take jobs that need this device "
                                                                 "(cpu, gpu, xpu, npu)"),
    queues: Optional[str] = typer.Option(None, "--queues", "-Q", help="comma-separated queues (default: onboard "
                                                                       "plus onboard.<device>)"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="worker name (default onboard-<device>@host)"),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
) -> None:
    """Run onboarding jobs from the broker (needs ONBOARD_BROKER_URL and ONBOARD_CHECKPOINT_URL)."""
    from agent.cli.main import fail
    from tools.errors import UserError

    try:
        from agent.scale.settings import backend

        if not backend().distributed:
            raise UserError("onboard worker needs ONBOARD_BROKER_URL and ONBOARD_CHECKPOINT_URL (scale mode); "
                            "without them `onboard serve` runs jobs in its own threads")
        from agent.scale.devices import DEVICES, QUEUE, check_device, queue_name

        check_device(device)
        try:
            from agent.scale.worker_app import app
        except ImportError as exc:
            raise UserError(f"scale mode is not installed ({exc.name} missing): pip install "
                            "-r requirements-scale.lock") from None
        wanted = [q.strip() for q in queues.split(",") if q.strip()] if queues else [QUEUE] + (
            [queue_name(device)] if device else [])
        known = {queue_name(d) for d in (None, *DEVICES)}
        if unknown := [q for q in wanted if q not in known]:
            raise UserError(f"unknown queue {unknown[0]!r}; queues are {', '.join(sorted(known))}")
    except UserError as exc:
        fail(exc)
    import logging

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    import agent.scale.task  # noqa: F401
    import agent.service.app  # noqa: F401  - imported once here, not again in every job's fresh process

    node = name or f"onboard-{device or 'any'}@{socket.gethostname()}"
    from agent.scale import heartbeat

    try:
        # Alive in Postgres while it runs; reaps the sandbox containers of dead workers on its engine.
        heartbeat.start(backend().checkpoint_url, node)
    except Exception as exc:  # psycopg's errors: the ledger is unreachable, so no job could run either
        fail(UserError(f"cannot reach the Postgres at ONBOARD_CHECKPOINT_URL: {str(exc).splitlines()[0]}"))
    app.worker_main(["worker", "-c", str(concurrency), "-Q", ",".join(wanted), "-n", node, "-l", loglevel,
                     "--without-gossip", "--without-mingle", "-E"])


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
