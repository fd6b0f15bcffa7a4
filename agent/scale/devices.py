"""Device labels: a job that needs a device goes to onboard.<device>, which only such workers read."""

from __future__ import annotations

from typing import Literal

Device = Literal["cpu", "gpu", "xpu", "npu"]
DEVICES: tuple[Device, ...] = ("cpu", "gpu", "xpu", "npu")
QUEUE = "onboard"  # jobs any worker may run


def queue_name(device: str | None) -> str:
    return f"{QUEUE}.{device}" if device else QUEUE


def check_device(device: str | None) -> Device | None:
    if device is not None and device not in DEVICES:
        from tools.errors import UserError

        raise UserError(f"--device must be one of {', '.join(DEVICES)}")
    return device
