"""The graph's state: small, JSON-serialisable; big artifacts stay on disk."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def merge(a: dict | None, b: dict | None) -> dict:
    return {**(a or {}), **(b or {})}


class OnboardState(TypedDict, total=False):
    request: dict[str, Any]  # model, target, repo, ref, sandbox, config_path, ...
    thread_id: str
    job_dir: str
    model_type: str
    workspace: dict[str, Any]  # tools.repo.workspace.Workspace as data
    analysis: dict[str, Any]
    plan: dict[str, Any]
    references: list[dict[str, Any]]  # bounded summaries; raw diffs stay on disk
    tiny: dict[str, Any]
    candidates: list[dict[str, Any]]
    candidate_index: int
    patch: dict[str, Any]
    verification: dict[str, Any]
    attempts: Annotated[list[dict[str, Any]], operator.add]
    pr: dict[str, Any] | None
    outcome: str  # pr | refused | needs_llm | tiny_failed | already_supported | error
    message: str
    timings: Annotated[dict[str, float], merge]
    # LLM implementer: rounds done, last exit status, usage, trajectory path (the conversation is on disk)
    llm: dict[str, Any]
