"""Run the sweep on a cron expression from NightlySettings (APScheduler).

The service adds the job to its own scheduler (`add_to`); `onboard nightly
--schedule` runs a blocking one for machines without the service. Overlapping
nights never run twice at once: max_instances=1 here, and the sweep's own lock
across processes.
"""

from __future__ import annotations

import logging
import re

from agent.nightly.settings import NightlySettings
from agent.settings import Settings

log = logging.getLogger(__name__)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def standard_crontab(expr: str) -> str:
    """Day-of-week numbers as cron means them (0 or 7 = Sunday), spelled as names.

    APScheduler 3 reads numbers as 0 = Monday, so "1-5" would run Tuesday to Saturday.
    """
    fields = expr.split()
    if len(fields) == 5:
        fields[4] = re.sub(r"(?<![/\d])\d+", lambda m: _DAYS[int(m.group())] if int(m.group()) < 8 else m.group(),
                           fields[4])
    return " ".join(fields)


def trigger(nightly: NightlySettings):
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(standard_crontab(nightly.cron), timezone=nightly.timezone)
    except (ValueError, LookupError) as exc:
        from tools.errors import UserError

        raise UserError(f"invalid nightly cron {nightly.cron!r} / timezone {nightly.timezone!r}: {exc}") from None


def scheduled_sweep(settings: Settings, nightly: NightlySettings) -> None:
    """What the scheduler calls: a whole-gap sweep with the settings' options; failures are logged, not raised."""
    from agent.nightly.sweep import Options, sweep

    opts = Options(target=nightly.target, repo=nightly.repo, jobs=nightly.jobs, since_days=nightly.since_days)
    try:
        result = sweep(opts, settings, nightly, progress=log.info)
        log.info("nightly sweep %s: %s", result.summary["run_id"], result.summary["counts"])
    except Exception:  # noqa: BLE001 - one failed night must not stop the scheduler
        log.exception("nightly sweep of %s failed", nightly.target)


def add_to(scheduler, settings: Settings, nightly: NightlySettings):
    return scheduler.add_job(scheduled_sweep, trigger(nightly), args=(settings, nightly),
                             id=f"nightly:{nightly.target}", name=f"nightly sweep of {nightly.target}",
                             max_instances=1, coalesce=True, misfire_grace_time=3600, replace_existing=True)


def run_forever(settings: Settings, nightly: NightlySettings) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone=nightly.timezone)
    add_to(scheduler, settings, nightly)
    scheduler.start()
