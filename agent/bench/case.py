"""One upstream onboarding replayed, in its own process: choose the base, onboard, compare, record.

The onboarding is the normal graph on the target's deterministic path (no LLM endpoint, nothing
published: a dry run); only the base revision differs from `onboard run`. Everything the target
knows (which commits, whether a past revision still works, how to compare) comes through the
target contract.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

from pydantic import BaseModel

from agent.bench.store import CaseRow, RowStore
from agent.settings import Settings
from tools.repo.workspace import file_lock
from tools.targets.base import HistoryCase

LLM_VARS = ("ONBOARD_LLM_BASE_URL", "ONBOARD_LLM_API_KEY")


class CaseSpec(BaseModel):
    case: HistoryCase
    target: str
    source: str  # the checkout (or URL) the bench reads
    root: Path  # this bench's directory (agent.bench.store layout)
    settings: Settings  # data_dir = root, cache_dir = the shared caches
    inputs: dict
    threads: int | None = None


def main(spec: CaseSpec) -> dict:
    """Process entry point: the row, also written to the store (a killed bench keeps what finished)."""
    from agent.nightly.job import die_with_parent

    if multiprocessing.parent_process() is not None:  # a worker: a killed bench must not leave it running
        die_with_parent()
    for var in LLM_VARS:  # the deterministic path: an endpoint in the environment must not be used
        os.environ.pop(var, None)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if spec.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(spec.threads))
    try:
        row = replay(spec)
    except Exception as exc:  # noqa: BLE001 - one case's crash is that row's outcome, not the bench's
        row = CaseRow(case=spec.case, mode="none", outcome="error",
                      message=f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
    row.inputs, row.finished_at = spec.inputs, time.time()
    RowStore(spec.root).put(row)
    return row.model_dump(mode="json")


def choose_base(spec: CaseSpec, target, mirror: Path, sandbox) -> tuple[str, str | None, str | None, str]:
    """(mode, repo, ref, note): the parent when it works in today's environment, else HEAD minus the commit."""
    from tools.repo.history import head, reverted_head, stripped_head
    from tools.repo.workspace import RepoManager

    sha = spec.case.sha
    probe = spec.root / "compare" / sha[:12] / "parent"
    RepoManager(spec.settings.caches).worktree(mirror, f"{sha}^", probe)
    try:
        problem = target.history_base_problem(probe, sandbox, spec.root / "compare" / sha[:12] / "probe")
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if problem is None:
        return "parent", spec.source, f"{sha}^", "the parent works in the target environment"
    clone, head_rev = spec.root / "clone", head(mirror)
    with file_lock(spec.root / "clone.lock"):  # K cases may need a HEAD-based base at once: one clone, one at a time
        tag, note = stripped_head(clone, mirror, head_rev, sha, lambda ws: target.history_strip(ws, spec.case, mirror))
        if tag is not None:
            return "head_without", str(clone), tag, f"parent: {problem}; {note}"
        tag, why = reverted_head(clone, mirror, head_rev, sha)
    if tag is None:
        return "none", None, None, f"parent: {problem}; {note}; {why}"
    return "revert", str(clone), tag, f"parent: {problem}; {note}; HEAD with the commit reverted"


def replay(spec: CaseSpec) -> CaseRow:
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps, make_sandbox
    from agent.nightly.job import for_builder
    from agent.nightly.store import Inputs
    from tools.repo.workspace import RepoManager
    from tools.targets import get_target

    settings, case = spec.settings, spec.case
    target = get_target(spec.target, settings.caches)
    mirror = RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s).mirror(spec.source)
    sandbox = make_sandbox(settings, target.env)
    mode, repo, ref, note = choose_base(spec, target, mirror, sandbox)
    if mode == "none":
        return CaseRow(case=case, mode=mode, mode_note=note, outcome="not_reproducible", message=note)
    start = time.monotonic()
    job = prepare(Request(model=case.model, target=spec.target, repo=repo, ref=ref, sandbox=settings.sandbox),
                  settings)
    # The thread id also names the builder: changed code onboards afresh, an interrupted bench resumes.
    job = for_builder(job, Inputs(transformers="", target_rev=spec.inputs["target_head"],
                                  builder=spec.inputs["builder"]), settings)
    job.initial_state["request"]["publish"] = "dry_run"  # measured, never published
    state, _ = drive(settings, make_deps(settings, job.target, lambda m: None), job.thread_id, job.initial_state)
    onboard_s = time.monotonic() - start
    usage = (state.get("llm") or {}).get("usage") or {}
    row = CaseRow(case=case, mode=mode, mode_note=note, outcome=state.get("outcome", "error"),
                  message=(state.get("message") or "")[:400], thread_id=job.thread_id,
                  onboard_s=round(onboard_s, 1), tokens=int(usage.get("total_tokens") or 0))
    start = time.monotonic()
    row.candidate, row.agreements = compare(spec, target, sandbox, state, mirror, mode)
    row.compare_s = round(time.monotonic() - start, 1)
    return row


def chosen_attempt(attempts: list[dict]) -> dict | None:
    from agent.graph.verdict import best_attempt

    return next((a for a in attempts if a.get("passed")), None) or best_attempt(attempts)


def compare(spec: CaseSpec, target, sandbox, state: dict, mirror: Path, mode: str):
    from tools.repo.history import apply_diff, head, upstream_diff
    from tools.repo.workspace import RepoManager
    from tools.targets.base import JobContext

    case, settings = spec.case, spec.settings
    repos = RepoManager(settings.caches)
    attempt = chosen_attempt(state.get("attempts") or [])
    our_diff = Path(attempt["diff"]).read_text() if attempt else ""
    scratch = spec.root / "compare" / case.sha[:12]
    ours = repos.worktree(Path(state["request"]["mirror"]), state["workspace"]["base_rev"], scratch / "ours")
    problem = apply_diff(ours, our_diff)
    if problem:
        raise RuntimeError(f"our change does not re-apply to its base: {problem}")
    # Upstream's tree after its change: the commit itself, or HEAD when the base was HEAD without it.
    upstream = repos.worktree(mirror, case.sha if mode == "parent" else head(mirror), scratch / "upstream")
    tiny = (state.get("tiny") or {}).get("path")
    ctx = JobContext(model_type=case.model_type, tiny_dir=Path(tiny) if tiny else None, work_dir=scratch / "work",
                     parity_tolerance=settings.parity_tolerance, timeout_s=settings.verify_timeout_s,
                     tests_timeout_s=settings.tests_timeout_s)
    try:
        agreements = target.compare_history(case, ours, upstream, our_diff, upstream_diff(mirror, case.sha), ctx,
                                            sandbox)
    finally:  # scratch trees are large; the row keeps what they showed
        for tree in (ours, upstream):
            shutil.rmtree(tree, ignore_errors=True)
    return (attempt or {}).get("candidate"), agreements
