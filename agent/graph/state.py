"""The graph's state: small, JSON-serialisable; big artifacts stay on disk.

Outcomes, publish modes and check statuses are closed sets: a new value is a
change to this file, never a string invented in a node.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict, get_args

# How a request ended. pr: verified and published; dry_run: verified, nothing published by request;
# rejected: verified, a reviewer declined publication; refused: no candidate passed and no implementer
# can help further; needs_llm: no candidate passed and an implementer (LLM) is what is missing;
# tiny_failed: no tiny model to verify against; already_supported: nothing to do.
Outcome = Literal["pr", "dry_run", "rejected", "refused", "needs_llm", "tiny_failed", "already_supported"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
# Outcomes decided before the report node; the others are the report's verdict.
FINAL_BEFORE_REPORT = frozenset({"pr", "dry_run", "rejected", "tiny_failed", "already_supported"})
PublishMode = Literal["auto", "approval", "dry_run"]


def merge(a: dict | None, b: dict | None) -> dict:
    return {**(a or {}), **(b or {})}


class OnboardState(TypedDict, total=False):
    request: dict[str, Any]  # model, target, repo, ref, sandbox, config_path, publish, ...
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
    # One per verified candidate: candidate, passed, first_failure, failed_stage, score, score_label,
    # divergence, report, diff (see nodes/verify.py)
    attempts: Annotated[list[dict[str, Any]], operator.add]
    pr: dict[str, Any] | None
    outcome: Outcome
    message: str
    advice: list[str]
    timings: Annotated[dict[str, float], merge]
    # LLM implementer: rounds done, last exit status, usage, trajectory path (the conversation is on disk)
    llm: dict[str, Any]
