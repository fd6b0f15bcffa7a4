"""The Celery app built from ONBOARD_BROKER_URL: what `onboard worker` runs and `celery -A` (Flower) loads."""

from __future__ import annotations

from agent.scale.celery_app import make_celery
from agent.scale.settings import backend


def _app():
    url = backend().broker_url
    if url is None:
        from tools.errors import UserError

        raise UserError("ONBOARD_BROKER_URL is not set: scale mode needs a broker")
    return make_celery(url)


app = _app()
