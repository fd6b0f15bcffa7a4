"""Which backend runs jobs: the embedded default, or a broker + Postgres (scale mode).

Read from the environment only (no pydantic import cost on the default path):
ONBOARD_BROKER_URL (amqp:// or redis://) sends jobs to Celery workers;
ONBOARD_CHECKPOINT_URL (postgresql://) holds the job ledger, the graph
checkpoints and the thread locks. Either unset: today's SQLite + threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BROKER_ENV = "ONBOARD_BROKER_URL"
CHECKPOINT_ENV = "ONBOARD_CHECKPOINT_URL"
DEVICE_ENV = "ONBOARD_WORKER_DEVICE"


@dataclass(frozen=True)
class Backend:
    broker_url: str | None
    checkpoint_url: str | None

    @property
    def distributed(self) -> bool:
        """Jobs go to Celery workers (needs both URLs: the ledger must be shared too)."""
        return bool(self.broker_url and self.checkpoint_url)


def backend(env: dict[str, str] | None = None) -> Backend:
    env = os.environ if env is None else env
    broker = env.get(BROKER_ENV, "").strip() or None
    pg = env.get(CHECKPOINT_ENV, "").strip() or None
    if broker and not pg:
        from tools.errors import UserError

        raise UserError(f"{BROKER_ENV} is set but {CHECKPOINT_ENV} is not: workers on other machines "
                        "need the shared Postgres ledger and checkpoints")
    if pg and not pg.startswith(("postgresql://", "postgres://")):
        from tools.errors import UserError

        raise UserError(f"{CHECKPOINT_ENV} must be a postgresql:// URL")
    if broker and not broker.startswith(("amqp://", "pyamqp://", "redis://", "rediss://", "amqps://")):
        from tools.errors import UserError

        raise UserError(f"{BROKER_ENV} must be an amqp:// or redis:// URL")
    return Backend(broker, pg)


def checkpoint_url() -> str | None:
    return backend().checkpoint_url
