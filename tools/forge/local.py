"""Forges publish a verified change as a pull request.

`LocalForge` pushes the branch to a bare repository under the data dir and
writes the PR record (markdown body, diff, JSON twin); the GitHub forge lives
beside it behind the same protocol. Publishing is an upsert keyed by target +
model type, so a resumed or repeated run updates the record, never adds one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import git
from pydantic import BaseModel, Field

from tools.repo.git_safe import GIT_ENV, harden, open_gitdir, open_worktree
from tools.repo.shared_commit import change_parent
from tools.repo.workspace import commit_all


class PRRecord(BaseModel):
    target: str
    model_type: str  # the record's key: the model type, or finer (one PR per checkpoint entry)
    subject: str = ""  # the model type the request was about, whatever the key
    title: str
    branch: str
    remote: str
    base_rev: str
    head_rev: str
    url: str
    body_path: str
    diff_path: str
    json_path: str
    thread_id: str = ""
    verification: dict = Field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 1


@runtime_checkable
class Forge(Protocol):
    name: str

    def publish(self, *, worktree: Path, base_rev: str, branch: str, title: str, body: str,
                target: str, model_type: str, thread_id: str, verification: dict, subject: str = "") -> PRRecord: ...

    def find(self, target: str, model_type: str) -> PRRecord | None: ...

    def public_remote(self, target: str) -> str:
        """Where reviewers fetch branches from (the PR body's reproduce steps)."""
        ...

    def records(self) -> list[PRRecord]: ...


def open_record_for(forge: Forge, target: str, model_type: str) -> PRRecord | None:
    """An open PR of `target` about `model_type`, whatever key it was filed under."""
    found = forge.find(target, model_type)
    if found is None:
        found = next((r for r in forge.records() if r.target == target and r.subject == model_type), None)
    return found if found is not None and getattr(found, "state", "open") == "open" else None


def branch_name(target: str, model_type: str) -> str:
    return f"onboard/{target}/{model_type}"


class RecordStore:
    """PR records on disk, `prs/<target>/<key>.{md,diff,json}`: what every forge writes and `onboard prs`
    reads. Writing is an upsert: the JSON twin is replaced atomically and its revision counts up."""

    def __init__(self, data_dir: Path):
        self.root = data_dir

    def dir(self, target: str) -> Path:
        return self.root / "prs" / target

    def find(self, target: str, model_type: str) -> PRRecord | None:
        path = self.dir(target) / f"{model_type}.json"
        return PRRecord.model_validate_json(path.read_text()) if path.exists() else None

    def records(self) -> list[PRRecord]:
        return [PRRecord.model_validate_json(p.read_text()) for p in sorted((self.root / "prs").glob("*/*.json"))]

    def write(self, *, target: str, model_type: str, body: str, diff: str, **fields) -> PRRecord:
        out = self.dir(target)
        out.mkdir(parents=True, exist_ok=True)
        body_path, diff_path, json_path = (out / f"{model_type}{ext}" for ext in (".md", ".diff", ".json"))
        previous = self.find(target, model_type)
        now = time.time()
        record = PRRecord(target=target, model_type=model_type, body_path=str(body_path),
                          diff_path=str(diff_path), json_path=str(json_path),
                          created_at=previous.created_at if previous else now, updated_at=now,
                          revision=(previous.revision + 1) if previous else 1, **fields)
        body_path.write_text(body)
        diff_path.write_text(diff + "\n")
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record.model_dump(mode="json"), indent=2))
        tmp.replace(json_path)
        return record


class StoredRecords:
    """`find` and `records` of the Forge protocol, for forges that keep their records in a RecordStore."""

    store: RecordStore

    def find(self, target: str, model_type: str) -> PRRecord | None:
        return self.store.find(target, model_type)

    def records(self) -> list[PRRecord]:
        return self.store.records()


class LocalForge(StoredRecords):
    name = "local"

    def __init__(self, data_dir: Path):
        self.root = data_dir
        self.store = RecordStore(data_dir)

    def public_remote(self, target: str) -> str:
        # The local remote is a path on this machine: a PR body never names it (reviewers have the branch).
        return ""

    def _remote(self, target: str, source: git.Repo) -> Path:
        path = self.root / "remotes" / f"{target}.git"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._seed(path, source)
        # Pushing runs the remote's receive-pack with the remote's own config and hooks.
        open_gitdir(path)
        return path

    @staticmethod
    def _seed(path: Path, source: git.Repo) -> None:
        """Start the remote as a fork starts: with upstream's objects, hard-linked from the worktree's own
        repository, so the first push sends the change, not the whole history (45 s of pack-objects for
        aiconfigurator's). An empty remote is the fallback."""
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
        try:
            common = Path(source.common_dir)
            open_gitdir(common)  # the worktree's repository is one of ours, checked before it is read
            git.Repo.clone_from(str(common), tmp / "r", bare=True, local=True, env=GIT_ENV)
            seeded = harden(git.Repo(tmp / "r"))
            seeded.git.remote("remove", "origin")  # a host path; the remote stands alone
        except (git.GitCommandError, OSError, ValueError):
            shutil.rmtree(tmp / "r", ignore_errors=True)
            harden(git.Repo.init(tmp / "r", bare=True))
        try:
            (tmp / "r").rename(path)
        except OSError:  # another job made it first
            pass
        shutil.rmtree(tmp, ignore_errors=True)

    def publish(self, *, worktree, base_rev, branch, title, body, target, model_type, thread_id,
                verification, subject="") -> PRRecord:
        repo = open_worktree(worktree)
        # Re-running publish (resume) must yield the same branch content, not a second commit.
        repo.git.reset("-q", "--soft", change_parent(worktree, base_rev))
        head = commit_all(repo, f"{title}\n\nGenerated and verified by Onboarder (thread {thread_id}).")
        remote = self._remote(target, repo)
        repo.git.push("-q", "--force", str(remote), f"HEAD:refs/heads/{branch}", env=GIT_ENV)
        diff = repo.git.diff(base_rev, head, "--no-color", "--no-ext-diff", "--no-textconv")
        return self.store.write(target=target, model_type=model_type, body=body, diff=diff, title=title,
                                branch=branch, remote=str(remote), base_rev=base_rev, head_rev=head,
                                url=f"file://{remote}#{branch}", thread_id=thread_id, verification=verification,
                                subject=subject or model_type)
