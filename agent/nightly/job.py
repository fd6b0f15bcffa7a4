"""One model type in its own process: prepare, drive the graph, name the outcome, record it.

A process per type gives each job its own sandbox and worktree (the graph's
intake makes one per thread) and lets the sweep enforce the per-type budget
by killing it. The job records its own attempt, so a sweep killed after a job
finished still knows it finished; a job killed midway leaves only a
checkpoint, which the next sweep resumes under the same thread id.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from agent.nightly import status
from agent.nightly.store import Inputs, open_store
from agent.settings import Settings

PR_SET_PDEATHSIG = 1


class JobSpec(BaseModel):
    model_type: str
    target: str
    repo: str | None = None
    ref: str | None = None
    settings: Settings
    inputs: Inputs
    out_dir: Path  # the run's jobs/ dir: <type>.progress.json and <type>.result.json
    llm_configured: bool = False
    threads: int | None = None  # cores per job: K parallel jobs must not each take every core


def progress_path(out_dir: Path, model_type: str) -> Path:
    return out_dir / f"{model_type}.progress.json"


def result_path(out_dir: Path, model_type: str) -> Path:
    return out_dir / f"{model_type}.result.json"


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)


def die_with_parent(grace_s: float = 15.0) -> None:
    """A job process's end follows its parent's: a SIGKILLed sweep or bench must not leave jobs running on
    (they would race the next run).

    The parent's death sends SIGTERM, which raises SystemExit so the sandbox's `finally` kills its process
    group. That is not enough alone: the handler waits while the main thread is inside a long native call,
    and a pool worker's loop catches the SystemExit and goes on. A watchdog thread therefore kills the
    process once it has outlived its parent by `grace_s`.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass

    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    parent = os.getppid()

    def watchdog() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watchdog, name="die-with-parent", daemon=True).start()


def main(spec: JobSpec) -> None:
    """Process entry point (multiprocessing target)."""
    die_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if spec.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(spec.threads))
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(spec.settings.data_dir, spec.target)
    start = time.monotonic()
    with store.type_lock(spec.model_type) as mine:
        if not mine:
            row = status.skipped(spec.model_type, "another process is working on this type "
                                 "(a job left by an earlier sweep); it will be recorded by that process")
        else:
            row = onboard(spec)
            row.inputs = spec.inputs.model_dump()
            row.seconds = round(time.monotonic() - start, 2)
            row.finished_at = time.time()
            if row.status in status.ATTEMPTED:
                store.record(row)
    _write(result_path(spec.out_dir, spec.model_type), row.model_dump(mode="json"))


def onboard(spec: JobSpec) -> status.Row:
    from tools.errors import EnvironmentProblem, UserError
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps

    settings = spec.settings
    progress = progress_path(spec.out_dir, spec.model_type)
    seen: dict = {"node": None, "thread_id": None}

    def on_node(name: str, update: dict) -> None:
        seen["node"] = name
        _write(progress, seen)

    try:
        job = prepare(Request(model=spec.model_type, target=spec.target, repo=spec.repo, ref=spec.ref), settings)
    except (UserError, EnvironmentProblem) as exc:
        return status.from_state(spec.model_type, {}, llm_configured=spec.llm_configured,
                                 error={"node": "prepare", "message": str(exc)})
    job = for_builder(job, spec.inputs, settings)
    seen["thread_id"] = job.thread_id
    _write(progress, seen)
    deps = make_deps(settings, job.target, lambda m: None)
    try:
        state, _ = drive(settings, deps, job.thread_id, job.initial_state, on_node)
    except Exception as exc:  # noqa: BLE001 - a crash of one type is that type's status, not the sweep's
        node, state = failed_node(settings, deps, job.thread_id)
        return status.from_state(spec.model_type, {**job.initial_state, **state},
                                 llm_configured=spec.llm_configured,
                                 error={"node": node or (status.running_after(seen["node"]) if seen["node"]
                                                         else "intake"),
                                        "message": f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"})
    return status.from_state(spec.model_type, state, llm_configured=spec.llm_configured)


def for_builder(job, inputs: Inputs, settings: Settings):
    """The job under a thread id that also names the builder version.

    agent.graph.request derives thread ids from target, type, config and target revision;
    a new builder must run afresh instead of replaying the old builder's finished
    thread, while a killed sweep with the same builder resumes its thread.
    """
    import hashlib

    suffix = hashlib.sha256(inputs.builder.encode()).hexdigest()[:6]
    tid = f"{job.thread_id}-b{suffix}"
    job_dir = settings.path("jobs", tid)
    job_dir.mkdir(parents=True, exist_ok=True)
    state = {**job.initial_state, "thread_id": tid, "job_dir": str(job_dir)}
    return job.model_copy(update={"thread_id": tid, "job_dir": job_dir, "initial_state": state})


def failed_node(settings: Settings, deps, thread_id: str) -> tuple[str | None, dict]:
    """The node that was running when the graph raised (its checkpoint's `next`), and the state so far."""
    from agent.graph.run import compiled

    try:
        with compiled(settings, deps) as graph:
            snap = graph.get_state({"configurable": {"thread_id": thread_id}})
            return (snap.next[0] if snap.next else None), dict(snap.values or {})
    except Exception:  # noqa: BLE001 - the checkpoint is a hint here, not a requirement
        return None, {}
