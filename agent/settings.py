"""Runtime settings: one pydantic model, read from ONBOARD_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Device = Literal["CPU", "GPU", "NPU"]
PRECISIONS = ("f32", "default", "int8", "int4")
TOLERANCE_KEYS = ("min_top1", "min_greedy", "max_abs_diff")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "onboarder"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARD_", extra="forbid")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # Shared caches (mirrors, sdists, tiny models, release index); defaults under data_dir.
    cache_dir: Path | None = None
    # Parity gate: max |logits_ov - logits_pt| with the f32 precision hint.
    parity_tolerance: float = 1e-4
    sandbox: Literal["auto", "local", "docker"] = "local"
    # Each target names its own environment (image onboarder-<key>:<hash>); ONBOARD_<KEY>_IMAGE overrides it.
    verify_timeout_s: float = 900.0
    tests_timeout_s: float = 1200.0
    max_candidates: int = 4
    # After a candidate fails only a check another base would not change (the repository's tests, a reduced
    # precision), try the next candidates anyway.
    retry_after_tests: bool = False
    repair_attempts: int = 3
    reference_count: int = 3
    trust_remote_code: bool = False
    git_timeout_s: float = 120.0
    # Seconds a cached mirror is considered fresh before fetching again.
    mirror_freshness_s: float = 3600.0
    # Devices verification compiles for (ONBOARD_DEVICES=CPU,GPU); unset: every device the runtime reports.
    # A requested device that is absent is a skipped row with the reason, never a pass.
    devices: Annotated[list[Device] | None, NoDecode] = None
    # After the f32 gate: the device's default precision, int8 and int4 weights against PyTorch f32.
    precision_matrix: bool = True
    # Per precision, bars that override the target's measured defaults, e.g.
    # ONBOARD_PRECISION_TOLERANCES='{"int4": {"min_top1": 0.5}}' (keys: min_top1, min_greedy, max_abs_diff).
    precision_tolerances: dict[str, dict[str, float]] = Field(default_factory=dict)
    # The verification sandbox's share of contended CPU against other jobs (1 = even). `--target all` gives
    # its expected-longest target more, so the run's critical path is not the one slowed by the others.
    sandbox_cpu_weight: float = Field(1.0, gt=0, le=256)

    @field_validator("devices", mode="before")
    @classmethod
    def _split_devices(cls, value):
        if isinstance(value, str):
            value = [d.strip().upper() for d in value.split(",") if d.strip()]
        return value or None

    @field_validator("precision_tolerances")
    @classmethod
    def _known_tolerances(cls, value: dict) -> dict:
        for precision, bars in value.items():
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
            unknown = set(bars) - set(TOLERANCE_KEYS)
            if unknown:
                raise ValueError(f"unknown tolerance {sorted(unknown)[0]!r} for {precision} "
                                 f"(known: {', '.join(TOLERANCE_KEYS)})")
        return value

    # The LLM endpoint (ONBOARD_LLM_*) is configured in agent/llm_settings.py, its one home.

    def path(self, *parts: str) -> Path:
        return self.data_dir.joinpath(*parts)

    @property
    def caches(self) -> Path:
        return self.cache_dir or self.data_dir / "cache"

    def public_dict(self) -> dict:
        """Settings as plain data with secrets removed (for reports and trajectories)."""
        data = self.model_dump(mode="json")
        for key in list(data):
            if "key" in key or "token" in key or "secret" in key:
                data[key] = "***" if data[key] else None
        return data
