"""A total time budget for a job that runs several sandbox commands.

Each command keeps its own timeout, cut to what is left of the job's budget;
once the budget is spent, further commands are not started at all.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from sandboxes.base import Limits, Mount, Result, Sandbox


class JobBudget:
    """Wraps any Sandbox; itself a Sandbox. The clock starts at construction."""

    def __init__(self, sandbox: Sandbox, total_s: float, clock: Callable[[], float] = time.monotonic):
        self.sandbox = sandbox
        self.total_s = total_s
        self.name = sandbox.name
        self.python = sandbox.python
        self.warning = getattr(sandbox, "warning", None)
        self._clock = clock
        self._start = clock()

    @property
    def remaining_s(self) -> float:
        return max(self.total_s - (self._clock() - self._start), 0.0)

    def inside(self, mount: Mount) -> str:
        return self.sandbox.inside(mount)

    def run(self, cmd, *, mounts=(), env=None, workdir=None, limits: Limits | None = None) -> Result:
        limits = limits or Limits()
        left = self.remaining_s
        spent = f"job budget of {self.total_s:g} s exhausted"
        if left <= 0:
            return Result("timeout", None, "", spent, 0.0, backend=self.name, reason=spent)
        cut = left < limits.timeout_s
        if cut:
            limits = replace(limits, timeout_s=left)
        result = self.sandbox.run(cmd, mounts=mounts, env=env, workdir=workdir, limits=limits)
        if cut and result.status == "timeout" and result.reason.startswith("hard timeout"):
            result.reason = spent
        return result
