"""What the graph's nodes are given: settings and the swappable parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from agent.settings import Settings
from tools.forge.local import Forge
from tools.repo.workspace import RepoManager


@dataclass
class Deps:
    settings: Settings
    target: Any  # tools.targets.base.Target
    forge: Forge
    repos: RepoManager
    sandbox_factory: Callable[[], Any]  # built lazily: intake errors must not start engines
    progress: Callable[[str], None] = field(default=lambda msg: None)
    _sandbox: Any = None

    @property
    def sandbox(self):
        if self._sandbox is None:
            self._sandbox = self.sandbox_factory()
        return self._sandbox
