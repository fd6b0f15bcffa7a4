"""The Target protocol: everything the graph needs to know about one framework.

A target reads its own registry from the workspace (the code being patched,
never an installed package), proposes candidate changes in the order it
believes in, writes one candidate into the workspace, and verifies it in a
sandbox. The graph only sequences these calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class Plan(BaseModel):
    situation: str  # S1 | S2 | S3
    files: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    needs_llm: bool = False


class Candidate(BaseModel):
    """One concrete way to onboard: a base to follow plus named patterns."""

    id: str
    base: str
    patterns: list[str] = Field(default_factory=list)
    why: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class Check(BaseModel):
    name: str
    status: str  # passed | failed | skipped
    detail: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)


class VerifyReport(BaseModel):
    passed: bool
    checks: list[Check] = Field(default_factory=list)
    first_failure: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    raw_path: str | None = None  # full JSON report on disk

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


class JobContext(BaseModel):
    """What a target's verify/apply calls need besides the workspace."""

    model_config = {"arbitrary_types_allowed": True}

    model_type: str
    tiny_dir: Path
    work_dir: Path  # per-job scratch directory (reports, IR, logs)
    parity_tolerance: float = 1e-4
    timeout_s: float = 900.0
    tests_timeout_s: float = 1200.0


@runtime_checkable
class Target(Protocol):
    name: str
    default_repo: str
    pypi_name: str  # source distribution used when the repository is unreachable

    def supported_types(self, workspace: Path) -> set[str]: ...

    def plan(self, analysis: dict, workspace: Path) -> Plan: ...

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]: ...

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> list[str]:
        """Write the candidate into the workspace; return the files changed."""

    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox: Any, run_tests: bool) -> VerifyReport: ...

    def display_name(self, model_type: str) -> str: ...

    def pr_title(self, analysis: dict, candidate: Candidate) -> str: ...

    def min_transformers_version(self, model_type: str) -> tuple[str, str]: ...

    # Optional: `record_key(analysis) -> str` names the PR (branch, record) when one model type can
    # yield several independent changes (FlashInfer-Bench: one models.ts entry per checkpoint size).
    # Without it the key is the model type.
