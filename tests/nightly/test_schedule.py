"""The cron expression from settings drives APScheduler; bad ones are bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tools.errors import UserError
from agent.nightly.schedule import add_to, standard_crontab, trigger
from agent.nightly.settings import NightlySettings
from agent.settings import Settings


def test_cron_from_settings_fires_when_expected(monkeypatch):
    monkeypatch.setenv("ONBOARD_NIGHTLY_CRON", "30 3 * * 1-5")
    nset = NightlySettings()
    after = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)  # a Saturday
    nxt = trigger(nset).get_next_fire_time(None, after)
    assert (nxt.weekday(), nxt.hour, nxt.minute) == (0, 3, 30)


def test_bad_cron_is_user_error():
    with pytest.raises(UserError, match="invalid nightly cron"):
        trigger(NightlySettings(cron="every night"))


def test_job_added_once_per_target(tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    nset = NightlySettings()
    add_to(scheduler, Settings(data_dir=tmp_path), nset)
    job = add_to(scheduler, Settings(data_dir=tmp_path), nset)
    assert [j.id for j in scheduler.get_jobs()] == ["nightly:optimum-intel"]
    assert job.max_instances == 1
    scheduler.shutdown(wait=False)


def test_day_of_week_means_what_cron_means():
    assert standard_crontab("0 2 * * 1-5") == "0 2 * * mon-fri"
    assert standard_crontab("0 2 * * 0,7") == "0 2 * * sun,sun"
    assert standard_crontab("0 2 * * */2") == "0 2 * * */2"
