"""Drive the graph for one job: start, resume, or report a finished run."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from agent.graph.build import build_graph, sqlite_checkpointer
from agent.graph.deps import Deps
from agent.graph.localise import localise
from agent.settings import Settings
from sandboxes.envs import SandboxEnv
from tools.errors import EnvironmentProblem, UserError
from tools.forge.local import Forge, LocalForge
from tools.repo.workspace import RepoManager
from tools.targets import get_target

log = logging.getLogger(__name__)


class ThreadBusy(UserError):
    """Another process runs this thread now (a duplicate delivery retries later instead of failing)."""


def make_sandbox(settings: Settings, env: SandboxEnv, progress=None):
    """The sandbox for one target's environment: its image under docker, its interpreter locally."""
    from sandboxes.base import SandboxUnavailable
    from sandboxes.factory import make_sandbox as factory

    # Unset devices mean "what the runtime reports": every accelerator the host has is offered to the job.
    devices = tuple(d for d in (settings.devices or ("GPU", "NPU")) if d != "CPU")
    try:
        return factory(settings.sandbox, env, progress=progress, devices=devices)
    except SandboxUnavailable as exc:  # fail closed, in one line: never a run outside a sandbox
        raise EnvironmentProblem(str(exc)) from None


def select_forge(settings: Settings) -> Forge:
    """GitHub when ONBOARD_GITHUB_* names credentials and repositories; the local forge otherwise."""
    from tools.forge.github import GitHubConfig, GitHubForge

    config = GitHubConfig()
    return GitHubForge(config, settings.data_dir) if config.configured else LocalForge(settings.data_dir)


def make_deps(settings: Settings, target_name: str, progress, forge: Forge | None = None) -> Deps:
    target = get_target(target_name, settings.caches)
    return Deps(
        settings=settings,
        target=target,
        forge=forge or select_forge(settings),
        repos=RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s),
        sandbox_factory=lambda: make_sandbox(settings, target.env, progress),
        progress=progress,
    )


@contextmanager
def thread_lock(settings: Settings, thread_id: str):
    """One process per thread: a second `run`/`resume` of a live thread would edit the same worktree.

    In scale mode the lock is a Postgres advisory lock, which holds across machines (a file lock holds on one).
    """
    import fcntl
    import os

    from agent.scale.settings import checkpoint_url
    from tools.errors import UserError

    if (url := checkpoint_url()) is not None:
        from agent.scale.pg import advisory_lock

        with advisory_lock(url, f"thread:{thread_id}") as got:
            if not got:
                raise ThreadBusy(f"thread {thread_id} is already running on another worker; wait for it or "
                                 "stop it first")
            yield
        return
    path = settings.path("locks", f"{thread_id}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ThreadBusy(f"thread {thread_id} is already running (pid {holder}); wait for it or stop it "
                            "first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def compiled(settings: Settings, deps: Deps):
    from agent.scale.settings import checkpoint_url

    if (url := checkpoint_url()) is not None:
        from agent.scale.checkpoint import postgres_saver

        with postgres_saver(url) as saver:
            yield build_graph(deps, saver)
        return
    saver = sqlite_checkpointer(settings.path("checkpoints.sqlite"))
    try:
        yield build_graph(deps, saver)
    finally:
        saver.conn.close()


def stored_state(settings: Settings, thread_id: str) -> dict | None:
    """The last checkpoint of `thread_id` with this machine's paths (agent.graph.localise), None when there is
    none; UserError when the database is corrupt."""
    import sqlite3

    from agent.scale.settings import checkpoint_url
    from tools.errors import UserError

    if (url := checkpoint_url()) is not None:
        from agent.scale.checkpoint import postgres_saver

        with postgres_saver(url) as saver:
            tup = saver.get_tuple({"configurable": {"thread_id": thread_id}})
            return localise(dict(tup.checkpoint["channel_values"]), settings) if tup else None
    path = settings.path("checkpoints.sqlite")
    if not path.is_file():
        return None
    try:
        saver = sqlite_checkpointer(path)
        try:
            tup = saver.get_tuple({"configurable": {"thread_id": thread_id}})
            return localise(dict(tup.checkpoint["channel_values"]), settings) if tup else None
        finally:
            saver.conn.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path} is unreadable ({exc}); move it aside to start afresh") from None


def drive(settings: Settings, deps: Deps, thread_id: str, initial: dict | None, on_node=None,
          resume=None) -> tuple[dict, str]:
    """Run or resume `thread_id`. Returns (values, how: started|resumed|finished_before|interrupted).

    `resume` is the answer to a pending interrupt (the approval before publish); "interrupted"
    means the run stopped at one and waits for that answer.
    """
    from langgraph.types import Command

    config = {"configurable": {"thread_id": thread_id}}
    with thread_lock(settings, thread_id), compiled(settings, deps) as graph:
        snap = graph.get_state(config)
        if snap.values and not snap.next:
            return localise(dict(snap.values), settings), "finished_before"
        how = "resumed" if snap.next else "started"
        if snap.next and snap.values.get("job_dir"):
            _recreate_files(settings, dict(snap.values), thread_id)
        inp = None if snap.next else initial
        # A resume answer only goes to a pending interrupt; a run killed after it passed resumes plainly.
        if resume is not None and any(task.interrupts for task in snap.tasks):
            inp = Command(resume=resume)
        if inp is None and not snap.next:
            raise LookupError(f"no run with thread id {thread_id}")
        for chunk in graph.stream(inp, config, stream_mode="updates", durability="sync"):
            for node, update in chunk.items():
                if on_node:
                    on_node(node, update or {})
        final = graph.get_state(config)
        return localise(dict(final.values), settings), ("interrupted" if final.next else how)


def _recreate_files(settings: Settings, values: dict, thread_id: str) -> None:
    """A resume needs the files its checkpoint names: another worker's data dir, or a job dir deleted
    by hand since, gets them re-created (or one line naming what cannot be)."""
    from agent.graph.recreate import recreate

    here = localise(values, settings)
    ws = (here.get("workspace") or {}).get("path")
    if Path(here["job_dir"]).is_dir() and (not ws or Path(ws).is_dir()):
        return  # a worktree in place may hold edits newer than the checkpoint's change (an LLM round's)
    if made := recreate(here, settings):
        log.info("%s: re-created before resuming: %s", thread_id, ", ".join(made))


def job_dir(settings: Settings, thread_id: str) -> Path:
    return settings.path("jobs", thread_id)
