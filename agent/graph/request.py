"""Turn a request into a job: validate it, pin the target revision, derive the thread id.

Everything here runs before the graph, so bad input stops with a one-line
error before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel

from tools.errors import UserError
from agent.settings import Device, Settings
from tools.repo.workspace import RepoManager, RepoUnavailable, Workspace, normalise_repo, wrong_repository
from tools.targets import get_target
from tools.targets import DEFAULT_TARGET


class Request(BaseModel):
    model: str
    target: str = DEFAULT_TARGET
    repo: str | None = None
    ref: str | None = None
    sandbox: str | None = None
    references: list[str] = []  # PR numbers ("#123" or "123") or revisions; empty = automatic
    # The hardware this job needs (a routing label for nightly and the scale-out workers); None: any worker.
    device: Device | None = None


class Job(BaseModel):
    thread_id: str
    model_type: str
    target: str
    job_dir: Path
    initial_state: dict


def config_digest(raw: dict) -> str:
    """What a config re-resolved on another worker must match (agent.graph.recreate)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def thread_id_for(target: str, model_type: str, config_hash: str, base_rev: str, with_llm: bool = False) -> str:
    # With an LLM endpoint the same request can end differently (needs_llm → a PR), so it is another run.
    key = f"{target}|{model_type}|{config_hash}|{base_rev}" + ("|llm" if with_llm else "")
    return f"{target}-{model_type}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _installed_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise UserError(f"{dist} is not installed, and its repository is unreachable") from None


def resolve_workspace(target, request: Request, settings: Settings, repos: RepoManager,
                      progress=lambda m: None) -> tuple[Path, Workspace]:
    url = normalise_repo(request.repo) if request.repo else target.default_repo
    marker = target.marker  # a file every checkout of the target has
    try:
        # Bad input stops here, before the progress line and before anything is cloned: one line, exit 2.
        repos.preflight(url, request.ref, marker)
        progress(f"resolving {target.key} workspace")
        mirror = repos.mirror(url)
        rev = repos.resolve(mirror, request.ref)
        if marker and not repos.has_file(mirror, rev, marker):  # a remote: only the clone could tell
            raise UserError(wrong_repository(url, marker))
        return mirror, Workspace(path=mirror, base_rev=rev, source="git", origin=url)
    except RepoUnavailable as exc:
        if request.repo:  # the user named this repository: another source would be a different request
            raise UserError(str(exc)) from None
        if request.ref:
            raise UserError(f"{exc}; --ref {request.ref} needs the repository") from None
        if not target.pypi_name:
            raise UserError(f"{exc}; {target.key} has no source-distribution fallback: "
                            f"pass a checkout with --repo") from None
        version = _installed_version(target.pypi_name)
        try:
            mirror = repos.sdist_mirror(target.pypi_name, version)
        except RepoUnavailable as exc2:
            raise UserError(f"{exc}; fallback failed too: {exc2}") from None
        rev = repos.resolve(mirror, None)
        note = (f"repository unreachable ({exc}); workspace built from the {target.pypi_name}=={version} "
                f"source distribution on the package index, which has no tests/ or docs/")
        return mirror, Workspace(path=mirror, base_rev=rev, source="sdist",
                                 origin=f"pypi:{target.pypi_name}=={version}", note=note)


def prepare(request: Request, settings: Settings, progress=lambda m: None) -> Job:
    from tools.hf.config import load_config

    target = get_target(request.target, settings.caches)
    loaded = load_config(request.model, trust_remote_code=settings.trust_remote_code)
    raw = loaded.raw
    model_type = raw["model_type"]
    config_hash = config_digest(raw)[:12]

    repos = RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s, on_note=progress)
    mirror, ws = resolve_workspace(target, request, settings, repos, progress)
    if ws.note:
        progress(ws.note)
    from agent.llm.settings import LLMSettings

    tid = thread_id_for(target.key, model_type, config_hash, ws.base_rev, with_llm=LLMSettings().configured)
    job_dir = settings.path("jobs", tid)
    job_dir.mkdir(parents=True, exist_ok=True)
    config_path = job_dir / "config.json"
    config_path.write_text(json.dumps(raw, indent=2))
    state = {
        "request": {**request.model_dump(), "config_path": str(config_path), "mirror": str(mirror),
                    "config_source": loaded.source, "config_origin": loaded.origin,
                    "config_sha256": config_digest(raw)},
        "thread_id": tid,
        "job_dir": str(job_dir),
        "model_type": model_type,
        "workspace": ws.model_dump(mode="json"),
        "attempts": [],
        "timings": {},
    }
    return Job(thread_id=tid, model_type=model_type, target=target.key, job_dir=job_dir, initial_state=state)
