"""A job the graph can run without the network: a local upstream repository, its mirror, a config file
and the initial state, as `onboard run` would prepare them."""

from __future__ import annotations

import json
from pathlib import Path

import git

from agent.graph.request import thread_id_for
from agent.settings import Settings
from tools.repo.workspace import RepoManager, Workspace, commit_all


def local_job(tmp_path: Path, target: str, config: dict, files: dict[str, str]):
    """(settings, repos, initial state) for `config` onboarded into an upstream holding `files`."""
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    for name, text in files.items():
        (up / name).write_text(text)
    commit_all(repo, "base")
    settings = Settings(data_dir=tmp_path / "data")
    repos = RepoManager(settings.caches)
    mirror = repos.mirror(str(up))
    rev = repos.resolve(mirror, None)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    model_type = config["model_type"]
    tid = thread_id_for(target, model_type, "h", rev)
    job_dir = settings.path("jobs", tid)
    job_dir.mkdir(parents=True)
    initial = {"request": {"model": model_type, "target": target, "config_path": str(cfg), "mirror": str(mirror)},
               "thread_id": tid, "job_dir": str(job_dir), "model_type": model_type,
               "workspace": Workspace(path=mirror, base_rev=rev, source="git", origin=str(up)).model_dump(mode="json"),
               "attempts": [], "timings": {}}
    return settings, repos, initial
