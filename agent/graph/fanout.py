"""One model, every target: each target runs its own graph (workspace, sandbox environment, thread) in
parallel up to a limit, and the results become one table. A target that cannot take the model ends
its own row; it never holds up the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from agent.graph.verdict import best_attempt
from agent.settings import Settings
from tools.errors import EnvironmentProblem, UserError

log = logging.getLogger(__name__)


class TargetRow(BaseModel):
    target: str
    outcome: str  # a graph Outcome, or "error" when the request could not start for this target
    situation: str = ""
    changed: list[str] = []
    checks: str = ""  # "passed/total"
    score: float | None = None
    score_label: str = ""
    pr: str = ""
    reason: str = ""
    seconds: float = 0.0
    thread_id: str = ""


class FanOut(BaseModel):
    id: str
    model: str
    rows: list[TargetRow]
    wall_s: float


def fanout_id(model: str, targets: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([model, sorted(targets)]).encode()).hexdigest()[:12]
    return f"all-{digest}"


def parse_repos(values: list[str], targets: list[str]) -> dict[str, str]:
    """`--repo KEY=PATH` (repeatable) when running every target: each target has its own repository."""
    out = {}
    for v in values:
        key, sep, repo = v.partition("=")
        if not sep or key not in targets or not repo:
            raise UserError(f"with --target all, --repo takes KEY=URL_OR_PATH with KEY one of {', '.join(targets)}"
                            f" (got {v!r})")
        out[key] = repo
    return out


def _row(key: str, state: dict, seconds: float) -> TargetRow:
    checks = (state.get("verification") or {}).get("checks") or []
    attempts = state.get("attempts") or []
    best = next((a for a in attempts if a.get("passed")), None) or best_attempt(attempts)
    pr = state.get("pr") or {}
    return TargetRow(target=key, outcome=state.get("outcome", ""), situation=(state.get("plan") or {}).get("situation", ""),
                     changed=sorted((state.get("patch") or {}).get("files") or []),
                     checks=f"{sum(c['status'] == 'passed' for c in checks)}/{len(checks)}" if checks else "",
                     score=best.get("score") if best else None, score_label=(best or {}).get("score_label") or "",
                     pr=pr.get("url", ""), reason="" if pr else state.get("message", ""),
                     seconds=round(seconds, 1), thread_id=state.get("thread_id", ""))


def run_one(model: str, key: str, repo: str | None, settings: Settings, note: Callable[[str], None]) -> TargetRow:
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    t = time.monotonic()
    say = lambda msg: note(f"[{key}] {msg}")  # noqa: E731 - one prefix per target in the shared log
    try:
        job = prepare(Request(model=model, target=key, repo=repo), settings, say)
        deps = make_deps(settings, job.target, say)
        last = [time.monotonic()]

        def on_node(node: str, update: dict) -> None:
            now = time.monotonic()
            say(f"{node} {now - last[0]:.1f}s")
            last[0] = now
        state, _ = drive(settings, deps, job.thread_id, job.initial_state, on_node)
    except (UserError, EnvironmentProblem) as exc:
        return TargetRow(target=key, outcome="error", reason=" ".join(str(exc).split()),
                         seconds=round(time.monotonic() - t, 1))
    except Exception as exc:  # noqa: BLE001 - one target's crash is its own row, never the others' end
        log.exception("fan-out: %s failed", key)
        return TargetRow(target=key, outcome="error", reason=f"internal error: {type(exc).__name__}: {exc}"[:500],
                         seconds=round(time.monotonic() - t, 1))
    return _row(key, state, time.monotonic() - t)


def expected_order(targets: list[str], settings: Settings, last: dict[str, float] | None = None) -> list[str]:
    """Targets by their last fan-out time, longest first, never-seen ones ahead of all: with fewer slots
    than targets, the long ones must not start last (two 65 s targets queued behind a 40 s one were
    1.6x the slowest alone on 2 cores)."""
    last = _last_seconds(settings) if last is None else last
    return sorted(targets, key=lambda k: -last[k] if k in last else float("-inf"))


CRITICAL_WEIGHT = 4.0


def _last_seconds(settings: Settings) -> dict[str, float]:
    last: dict[str, tuple[float, float]] = {}  # target -> (when, seconds)
    for path in settings.path("fanout").glob("all-*.json"):
        if path.name.endswith("-config.json"):
            continue
        try:
            result = FanOut.model_validate_json(path.read_text())
        except ValueError:
            continue
        when = path.stat().st_mtime
        for row in result.rows:
            if row.outcome != "error" and when >= last.get(row.target, (0.0, 0.0))[0]:
                last[row.target] = (when, row.seconds)
    return {k: s for k, (_, s) in last.items()}


def _cpu_weights(targets: list[str], settings: Settings, last: dict[str, float]) -> dict[str, float]:
    """The target that took longest last time gets a larger share of contended CPU: it is the run's critical
    path, and the short ones fill the cores around it (measured: oi slowed from 64 s alone to 77 s among
    the others on 2 cores, while they were done at 45 s). Without a history every target is even."""
    weights = {k: settings.sandbox_cpu_weight for k in targets}
    if all(k in last for k in targets) and len(targets) > 1:
        longest = max(targets, key=lambda k: last[k])
        weights[longest] = settings.sandbox_cpu_weight * CRITICAL_WEIGHT
    return weights


def run_all(model: str, targets: list[str], repos: dict[str, str], settings: Settings, jobs: int | None,
            note: Callable[[str], None]) -> FanOut:
    """Every target at once by default: each is mostly one busy process (its sandbox) plus waits on git, so
    sharing the cores beats queueing when durations are unknown; `jobs` caps it (memory, a shared GPU)."""
    from tools.hf.config import load_config

    t = time.monotonic()
    jobs = len(targets) if jobs is None else jobs
    fid = fanout_id(model, targets)
    # The model is resolved once, here (transformers' lazy imports are not safe to race from threads);
    # every target then reads the same config file.
    loaded = load_config(model, trust_remote_code=settings.trust_remote_code)
    config = settings.path("fanout", f"{fid}-config.json")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(loaded.raw, indent=1))
    note(f"{model}: config resolved once ({loaded.origin}), {len(targets)} targets, {jobs} at a time")
    with _threads_per_target(min(jobs, len(targets))), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        last = _last_seconds(settings)  # the earlier fan-outs, read once for both decisions
        order, weights = expected_order(targets, settings, last), _cpu_weights(targets, settings, last)
        futures = {key: pool.submit(run_one, str(config), key, repos.get(key),
                                    settings.model_copy(update={"sandbox_cpu_weight": weights[key]}), note)
                   for key in order}
        rows = [futures[key].result() for key in targets]  # the table keeps the registry's order
    result = FanOut(id=fid, model=model, rows=rows, wall_s=round(time.monotonic() - t, 1))
    path = settings.path("fanout", f"{result.id}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2))
    return result


@contextmanager
def _threads_per_target(at_once: int):
    """Each sandbox gets its share of the cores (the jobs read these variables), unless the user set them:
    torch's and OpenMP's default of one thread per core, times every target at once, oversubscribes."""
    from tools.targets.sandbox_job import THREAD_VARS

    if any(v in os.environ for v in THREAD_VARS):
        yield
        return
    share = str(max(1, (os.cpu_count() or 1) // max(1, at_once)))
    os.environ.update({v: share for v in THREAD_VARS})
    try:
        yield
    finally:
        for v in THREAD_VARS:
            os.environ.pop(v, None)


def load(settings: Settings, fid: str) -> FanOut | None:
    path = settings.path("fanout", f"{fid}.json")
    return FanOut.model_validate_json(path.read_text()) if path.is_file() else None
