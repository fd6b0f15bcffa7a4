"""The state's file paths, as this machine's: what a checkpoint written elsewhere names, read here.

A checkpoint names files by the absolute paths of the machine that wrote
them. Every such path has a fixed shape under the data dir or the caches:
`<data>/jobs/<thread>/...`, `<caches>/mirrors/<name>`, `<caches>/tiny/<name>`.
Reading the state through `localise` maps each one onto this machine's data
dir and caches, so a resume on a worker with another ONBOARD_DATA_DIR (or
after the data dir moved) reads and writes its own files. The checkpoint
itself is never rewritten (a pending approval interrupt must survive), and
for paths already local the result is the same state.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any


def _under_job(path: str | None, thread_id: str, job_dir: str) -> str | None:
    """`path` re-rooted at this machine's job dir when it lies in a job dir of this thread."""
    if not path:
        return path
    parts = PurePosixPath(path).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] == thread_id and parts[i - 1] == "jobs":
            return str(PurePosixPath(job_dir, *parts[i + 1:]))
    return path


def _in_cache(path: str, folder) -> str:
    """`path` moved into `folder` when it lies in a folder of that name (a cache's shape), else unchanged."""
    p = PurePosixPath(path)
    return str(folder / p.name) if p.parent.name == folder.name else path


def localise(state: dict[str, Any], settings) -> dict[str, Any]:
    """A copy of `state` whose file paths are under `settings`' data dir and caches (see the module doc)."""
    tid = state.get("thread_id")
    if not tid or not state.get("job_dir"):
        return state
    job_dir = str(settings.path("jobs", tid))

    def job(path):
        return _under_job(path, tid, job_dir)

    def keys(d: dict, *names: str) -> dict:
        return {**d, **{k: job(d[k]) for k in names if d.get(k)}}

    out = {**state, "job_dir": job(state["job_dir"])}
    request = state.get("request") or {}
    if request:
        out["request"] = keys(request, "config_path")
        if request.get("mirror"):
            out["request"]["mirror"] = _in_cache(request["mirror"], settings.caches / "mirrors")
    if (ws := state.get("workspace")) and ws.get("path"):
        # Before intake the workspace's path is the mirror itself; after, the job's worktree.
        at_mirror = str(ws["path"]) == request.get("mirror")
        out["workspace"] = {**ws, "path": out["request"]["mirror"] if at_mirror else job(str(ws["path"]))}
    if (tiny := state.get("tiny")) and tiny.get("path"):
        out["tiny"] = {**tiny, "path": _in_cache(tiny["path"], settings.caches / "tiny")}
    if patch := state.get("patch"):
        out["patch"] = keys(patch, "diff_path")
    if attempts := state.get("attempts"):
        out["attempts"] = [keys(a, "report", "diff") for a in attempts]
    if refs := state.get("references"):
        out["references"] = [keys(r, "diff_path") for r in refs]
    if llm := state.get("llm"):
        out["llm"] = keys(llm, "trajectory")
    return out
