"""Nightly settings, read from ONBOARD_NIGHTLY_* (the graph's own settings stay in agent.settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tools.targets import DEFAULT_TARGET


class NightlySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARD_NIGHTLY_", extra="forbid")

    target: str = DEFAULT_TARGET
    repo: str | None = None
    jobs: int = Field(2, ge=1, le=64)
    # One type may not hold a job slot longer than this; it then ends as `timeout`.
    per_type_timeout_s: float = Field(240.0, gt=0)
    # Global budget: when any is reached no new type starts (running ones finish).
    wall_budget_s: float = Field(6 * 3600.0, gt=0)
    token_budget: int = Field(2_000_000, ge=0)
    max_prs: int = Field(100, ge=0)
    # A type attempted with the same inputs within this many days is skipped.
    since_days: float = Field(7.0, ge=0)
    # Candidates tried per type; fewer than a single run, because the sweep is wide, not deep.
    max_candidates: int = Field(3, ge=1)
    history_nights: int = Field(30, ge=1)
    # Pins the builder version attempts are keyed by (e.g. a release tag); by default it is a
    # hash of the code that decides outcomes, so any change there retries every type.
    builder_version: str | None = None
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
