"""The nightly sweep inside the service: an APScheduler job beside the workers.

The sweep keeps its own lock and de-duplication (agent.nightly), so a night
is one run even if the service restarts during it.
"""

from __future__ import annotations

from agent.settings import Settings


def start_nightly(settings: Settings):
    from apscheduler.schedulers.background import BackgroundScheduler

    from agent.nightly.schedule import add_to
    from agent.nightly.settings import NightlySettings

    nightly = NightlySettings()
    scheduler = BackgroundScheduler(timezone=nightly.timezone)
    add_to(scheduler, settings, nightly)
    scheduler.start()
    return scheduler
