"""`onboard bench history`: replay the last N onboardings of a target's history, K at a time.

Cases come from the target (`history_cases`); each runs in its own process (agent.bench.case) and
writes its own row, so the bench is resumable: a rerun reuses rows finished with the same inputs
(builder version, target HEAD) and replays the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent.bench.case import CaseSpec, main as run_case
from agent.bench.store import CaseRow, RowStore, bench_root
from agent.settings import Settings
from tools.targets.base import HistoryUnsupported, PassedOver


@dataclass
class Options:
    target: str
    source: str  # normalised checkout path or URL
    last: int
    jobs: int = 2
    run: bool = True  # False: report the rows stored so far, replay nothing


@dataclass
class Result:
    root: Path
    head: str
    rows: list[CaseRow]
    passed_over: list[PassedOver]
    reused: int
    wall_s: float


def bench_settings(base: Settings, root: Path) -> Settings:
    # Jobs and checkpoints under the bench; mirrors, tiny models and environments stay shared and warm.
    # A fresh fetch each time: revert-mode bases are tags the bench adds to its own clone.
    return base.model_copy(update={"data_dir": root, "cache_dir": base.caches, "mirror_freshness_s": 0.0})


def run(options: Options, base: Settings, progress: Callable[[str], None] = lambda m: None,
        runner=None) -> Result:
    from agent.nightly.store import builder_version
    from tools.errors import UserError
    from tools.repo.history import head
    from tools.repo.workspace import RepoManager
    from tools.targets import get_target

    target = get_target(options.target, base.caches)
    root = bench_root(base.data_dir, options.target, options.source)
    settings = bench_settings(base, root)
    mirror = RepoManager(base.caches, base.git_timeout_s, 0.0).mirror(options.source)
    try:
        cases, passed_over = target.history_cases(mirror, base.caches)
    except HistoryUnsupported as exc:
        raise UserError(str(exc)) from None
    if not cases:
        raise UserError(f"no onboarding commit of {options.target} found in {options.source}")
    cases = cases[:options.last]
    newest_kept = cases[-1].timestamp
    passed_over = [p for p in passed_over if _timestamp(mirror, p.sha) >= newest_kept]
    inputs = {"builder": builder_version(), "target_head": head(mirror)}
    store = RowStore(root)
    start = time.monotonic()
    rows: dict[str, CaseRow] = {}
    todo = []
    for case in cases:
        done = store.finished(case.sha, inputs)
        if done is not None:
            rows[case.sha] = done
            progress(f"{case.model_type} ({case.sha[:12]}): finished earlier with the same inputs, reused")
        else:
            todo.append(case)
    threads = max(1, (os.cpu_count() or 1) // max(1, options.jobs))
    if not options.run:
        for case in todo:
            progress(f"{case.model_type} ({case.sha[:12]}): not replayed yet (--no-run)")
        todo = []
    specs = [CaseSpec(case=c, target=options.target, source=options.source, root=root, settings=settings,
                      inputs=inputs, threads=threads) for c in todo]
    for row in _run_all(specs, options.jobs, runner or run_case):
        rows[row.case.sha] = row
        progress(f"{row.case.model_type} ({row.case.sha[:12]}): {row.outcome} [{row.mode}] "
                 f"in {row.onboard_s + row.compare_s:.0f} s")
    ordered = [rows[c.sha] for c in cases if c.sha in rows]
    return Result(root=root, head=inputs["target_head"], rows=ordered, passed_over=passed_over,
                  reused=len(rows) - len(specs), wall_s=round(time.monotonic() - start, 1))


def _timestamp(mirror: Path, sha: str) -> int:
    from tools.repo.git_safe import open_gitdir

    return int(open_gitdir(mirror).git.show("-s", "--format=%ct", sha))


def _run_all(specs: list[CaseSpec], jobs: int, runner):
    if not specs:
        return
    if jobs <= 1 or len(specs) == 1:
        for spec in specs:
            yield CaseRow.model_validate(runner(spec))
        return
    # spawn: each case gets a fresh interpreter (torch, sandboxes, signal handlers of its own)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(runner, spec): spec for spec in specs}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                yield CaseRow.model_validate(fut.result())
            except Exception as exc:  # noqa: BLE001 - a worker that died still leaves a row
                row = CaseRow(case=spec.case, mode="none", outcome="error", inputs=spec.inputs,
                              message=f"worker died: {type(exc).__name__}: {exc}"[:400], finished_at=time.time())
                RowStore(spec.root).put(row)
                yield row
