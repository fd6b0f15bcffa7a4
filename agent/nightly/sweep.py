"""The sweep: discover the gap, skip what needs no work tonight, run the rest K at a time.

Every type in the gap ends with a row (never a silent drop): a status from
the job, `timeout` from the per-type budget, or `skipped` with the reason
(open PR, recent attempt with the same inputs, --limit, the global budget,
an interrupted sweep). Resumable by construction: jobs record their own
attempts, unfinished ones leave a checkpoint under a deterministic thread id,
and the forge upserts PR records by target + model type.
"""

from __future__ import annotations

import os

import sqlite3
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from agent.nightly import status
from agent.nightly.gap import Gap, config_aliases, discover, select
from agent.nightly.settings import NightlySettings
from agent.nightly.store import Attempts, Inputs, builder_version, open_store
from agent.settings import Settings
from tools.forge.local import open_record_for
from tools.targets import DEFAULT_TARGET


@dataclass
class Options:
    target: str = DEFAULT_TARGET
    repo: str | None = None
    only: list[str] = field(default_factory=list)
    limit: int | None = None
    jobs: int = 2
    since_days: float = 7.0


@dataclass
class Budget:
    wall_s: float
    tokens: int
    prs: int

    def exhausted(self, elapsed: float, tokens: int, prs: int) -> str | None:
        """Why no new type may start any more tonight, or None."""
        if elapsed >= self.wall_s:
            return f"wall-time budget of {self.wall_s:.0f} s reached"
        if tokens >= self.tokens:
            return f"token budget of {self.tokens} reached ({tokens} used)"
        if prs >= self.prs:
            return f"PR budget of {self.prs} per night reached"
        return None

    def pr_room(self, prs: int, in_flight: int) -> bool:
        # Any running job may still publish: start another only if all of them could.
        return prs + in_flight < self.prs


@dataclass
class Plan:
    to_run: list[str]
    rows: list[status.Row]  # already decided: skipped with a reason


def plan_types(types: list[str], *, supported: set[str], inputs: Inputs, store: Attempts, forge,
               target: str, since_days: float, limit: int | None, now: float | None = None,
               aliases: dict[str, str] | None = None) -> Plan:
    to_run, rows = [], []
    aliases = aliases or {}
    for t in types:
        if t in supported:
            rows.append(status.skipped(t, f"already supported at {inputs.target_rev[:12]}", inputs=inputs.model_dump()))
            continue
        if t in aliases:
            rows.append(status.skipped(t, f"transformers builds it with {aliases[t]}'s config class, and "
                                          f"{aliases[t]} is already supported at {inputs.target_rev[:12]}"))
            continue
        pr = open_record_for(forge, target, t)
        if pr is not None:
            rows.append(status.skipped(t, f"open PR {pr.url}", pr_url=pr.url, pr_path=pr.json_path))
            continue
        prev = store.recent(t, inputs, since_days, now)
        if prev is not None:
            when = datetime.fromtimestamp(prev.finished_at or 0, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            rows.append(status.skipped(
                t, f"attempted {when} with the same inputs: {prev.status}", inputs=inputs.model_dump(),
                previous=prev.model_dump(mode="json", include={"status", "detail", "base", "score",
                                                               "situation", "pr_url", "report_path"})))
            continue
        if store.is_locked(t):
            rows.append(status.skipped(t, "another process is working on it (a job of an earlier sweep)"))
            continue
        to_run.append(t)
    if limit is not None and len(to_run) > limit:
        rows += [status.skipped(t, f"beyond --limit {limit}") for t in to_run[limit:]]
        to_run = to_run[:limit]
    return Plan(to_run=to_run, rows=rows)


def run_queue(types: list[str], launch: Callable[[str], object], *, jobs: int, budget: Budget,
              record: Callable[[status.Row], None], rows: list, clock=time.monotonic, poll_s: float = 0.5,
              progress=lambda msg: None) -> str | None:
    """Run `types` at most `jobs` at a time, appending a row per type to `rows`.

    Returns the global-budget reason that stopped new starts, or None.
    `launch(type)` returns a handle with done(), over_budget(), result(), stop(),
    abandon() and `recorded` (see workers.ProcessHandle).
    """
    pending, running = deque(types), {}
    start, stopped = clock(), None
    try:
        while pending or running:
            for t, h in list(running.items()):
                if h.done():
                    row = h.result()
                elif h.over_budget():
                    row = h.stop()
                else:
                    continue
                del running[t]
                if not h.recorded and row.status in status.ATTEMPTED:
                    record(row)
                rows.append(row)
                progress(f"{t}: {row.status} ({row.seconds:.0f}s) {row.detail[:120]}")
            done = [r for r in rows if r.model_type in types]
            tokens, prs = sum(r.tokens for r in done), sum(r.status == "pr" for r in done)
            reason = budget.exhausted(clock() - start, tokens, prs) if pending else None
            if reason:
                stopped = reason
                rows += [status.skipped(t, f"not started: {reason}") for t in pending]
                pending.clear()
            while pending and len(running) < jobs and budget.pr_room(prs, len(running)):
                t = pending[0]
                running[t] = launch(t)
                pending.popleft()  # only once launched: an interrupted launch leaves it pending
                progress(f"{t}: started")
            if pending or running:
                time.sleep(poll_s)
    except BaseException:
        # Interrupted: unfinished types get no attempt record, so the next sweep resumes them.
        for t, h in running.items():
            h.abandon()
            rows.append(status.skipped(t, "sweep interrupted while running; the next sweep resumes it"))
        rows += [status.skipped(t, "sweep interrupted before it started") for t in pending]
        raise
    return stopped


class SweepResult:
    def __init__(self, summary: dict, paths: dict[str, Path]):
        self.summary, self.paths = summary, paths


def llm_configured(settings: Settings) -> bool:
    """Is an LLM endpoint configured for the implementer?"""
    from agent.llm.settings import LLMSettings

    return LLMSettings().configured


def enable_wal(path: Path) -> None:
    """K jobs write checkpoints into one SQLite file: WAL lets readers and a writer overlap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _new_run_id(runs: Path, started_at: float) -> str:
    base = run_id = datetime.fromtimestamp(started_at, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    n = 1
    while (runs / run_id).exists():  # two sweeps in one second (tests, a quick re-run) keep both
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _workspace(target, opts: Options, settings: Settings, store: Attempts, progress):
    """The target revision tonight's jobs all start from, and a checkout of it to read the registry."""
    from agent.graph.request import Request, resolve_workspace
    from tools.repo.workspace import RepoManager

    repos = RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s)
    progress(f"resolving {target.key} workspace")
    mirror, ws = resolve_workspace(target, Request(model="nightly", target=opts.target, repo=opts.repo),
                                   settings, repos)
    if ws.note:
        progress(ws.note)
    return ws, repos.worktree(mirror, ws.base_rev, store.root / "workspace")


def _process_launcher(target, opts: Options, settings: Settings, nightly: NightlySettings, ws, inputs: Inputs,
                      out_dir: Path, llm: bool, progress):
    from agent.nightly import workers
    from agent.nightly.job import JobSpec

    job_settings = settings.model_copy(update={
        "verify_timeout_s": min(settings.verify_timeout_s, nightly.per_type_timeout_s),
        "tests_timeout_s": min(settings.tests_timeout_s, nightly.per_type_timeout_s),
        "max_candidates": min(settings.max_candidates, nightly.max_candidates)})
    ctx = workers.context()
    warmed = []

    def launch(t: str):
        if not warmed:
            warmed.append(workers.warm(ctx))
            progress(f"job processes ready in {warmed[0]:.1f} s")
        # Git workspaces are pinned to tonight's revision; an sdist workspace has only one.
        spec = JobSpec(model_type=t, target=target.key, repo=opts.repo,
                       ref=ws.base_rev if ws.source == "git" else None, settings=job_settings,
                       inputs=inputs, out_dir=out_dir, llm_configured=llm,
                       threads=max(1, (os.cpu_count() or 1) // max(1, opts.jobs)))
        return workers.ProcessHandle(ctx, spec, nightly.per_type_timeout_s)
    return launch


def plan_gap(target, opts: Options, settings: Settings, nightly: NightlySettings, store: Attempts, progress):
    """The workspace, the target's gap at its revision, the types selected from it, the inputs a result is
    valid for, and which types to run (the others carry their reason): shared by the sweep and the scale-mode enqueue."""
    from tools.forge.local import LocalForge

    ws, checkout = _workspace(target, opts, settings, store, progress)
    gap: Gap = discover(target, checkout)
    types = select(gap, opts.only)
    inputs = Inputs(transformers=gap.transformers_version, target_rev=ws.base_rev,
                    builder=nightly.builder_version or builder_version())
    supported = target.supported_types(checkout)
    planned = plan_types(types, supported=supported, inputs=inputs, store=store,
                         forge=LocalForge(settings.data_dir), target=target.key, since_days=opts.since_days,
                         limit=opts.limit, aliases=config_aliases(types, supported))
    return ws, gap, types, inputs, planned


def sweep(opts: Options, settings: Settings, nightly: NightlySettings, progress=lambda msg: None,
          launcher_factory=None) -> SweepResult:
    """Run one sweep; `launcher_factory(inputs, out_dir) -> launch(type)` replaces job processes in tests."""
    from agent.nightly import report
    from tools.forge.local import LocalForge
    from tools.targets import get_target

    target = get_target(opts.target, settings.caches)  # an unknown target writes nothing
    store = open_store(settings.data_dir, opts.target)
    with closing(store), store.sweep_lock():
        started_at, t0 = time.time(), time.monotonic()
        run_id = _new_run_id(store.root / "runs", started_at)
        ws, gap, types, inputs, planned = plan_gap(target, opts, settings, nightly, store, progress)
        progress(f"gap: {len(gap.types)} types; running {len(planned.to_run)}, skipping {len(planned.rows)}")
        llm = llm_configured(settings)
        enable_wal(settings.path("checkpoints.sqlite"))
        out_dir = store.root / "runs" / run_id / "jobs"
        out_dir.mkdir(parents=True, exist_ok=True)
        launch = (launcher_factory(inputs, out_dir) if launcher_factory else
                  _process_launcher(target, opts, settings, nightly, ws, inputs, out_dir, llm, progress))
        budget = Budget(wall_s=nightly.wall_budget_s, tokens=nightly.token_budget, prs=nightly.max_prs)
        summary = {
            "run_id": run_id, "night": datetime.fromtimestamp(started_at, timezone.utc).date().isoformat(),
            "target": target.key, "started_at": started_at,
            "workspace": {"source": ws.source, "origin": ws.origin, "base_rev": ws.base_rev, "note": ws.note},
            "inputs": inputs.model_dump(), "jobs": opts.jobs, "llm_configured": llm, "only": opts.only,
            "limit": opts.limit, "since_days": opts.since_days,
            "gap": {"primary": gap.primary.model_dump(), "others": [g.model_dump() for g in gap.others],
                    "supported": gap.supported},
            "budget": {"wall_s": budget.wall_s, "tokens": budget.tokens, "prs": budget.prs,
                       "per_type_s": nightly.per_type_timeout_s, "stopped": None},
            "interrupted": False,
        }
        rows: list[status.Row] = list(planned.rows)
        try:
            stopped = run_queue(planned.to_run, launch, jobs=opts.jobs, budget=budget, record=store.record,
                                rows=rows, progress=progress)
            summary["budget"]["stopped"] = stopped
            if stopped:
                progress(f"global budget: {stopped}; no new types were started")
        except (KeyboardInterrupt, SystemExit):
            summary["interrupted"] = True
            raise
        finally:
            order = {t: i for i, t in enumerate(types)}
            rows.sort(key=lambda r: order.get(r.model_type, len(order)))
            summary.update(finished_at=time.time(), wall_s=round(time.monotonic() - t0, 1),
                           rows=[r.model_dump(mode="json") for r in rows],
                           counts={s: sum(r.status == s for r in rows) for s in status.STATUSES},
                           tokens=sum(r.tokens for r in rows))
            paths = report.write(summary, store.root, keep_nights=nightly.history_nights)
        return SweepResult(summary, paths)
