"""What the graph's nodes are given: settings and the swappable parts, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from agent.llm.settings import LLMSettings
from agent.settings import Settings
from sandboxes.base import Sandbox
from tools.forge.local import Forge
from tools.repo.workspace import RepoManager
from tools.targets.base import Target


@dataclass
class Deps:
    settings: Settings
    target: Target
    forge: Forge
    repos: RepoManager
    sandbox_factory: Callable[[], Sandbox]  # built lazily: intake errors must not start engines
    llm: LLMSettings = field(default_factory=LLMSettings)
    progress: Callable[[str], None] = field(default=lambda msg: None)
    _sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = self.sandbox_factory()
        return self._sandbox
