"""Reference pull requests: how earlier models were onboarded, read from git.

`find_additions` walks the target's history once (cached per HEAD) for commits
that added a model registration; `score` ranks them against the current
analysis; `structured_diff` reduces one reference to files, hunks, classes and
patterns. Targets supply a `ReferenceProfile` saying what a registration looks
like and how to classify their files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

import git
from pydantic import BaseModel, Field
from unidiff import PatchSet

from agent.errors import UserError

PR_NUMBER = re.compile(r"\(#(\d+)\)\s*$")


class ReferenceProfile(Protocol):
    registry_files: tuple[str, ...]

    def added_types(self, added: list[str], removed: list[str]) -> list[str]: ...

    def classify(self, path: str) -> str: ...

    def patterns(self, patch: PatchSet) -> dict: ...


class Addition(BaseModel):
    sha: str
    timestamp: int
    subject: str
    pr: int | None
    model_types: list[str]
    kinds: list[str] = Field(default_factory=list)  # file kinds the change touched


class Reference(BaseModel):
    ref: str  # PR number as "#N", or a revision
    sha: str
    base: str
    subject: str
    score: float = 0.0
    why: list[str] = Field(default_factory=list)
    model_types: list[str] = Field(default_factory=list)
    files: list[dict] = Field(default_factory=list)  # path, status, kind, added, removed
    patterns: dict = Field(default_factory=dict)
    diff_path: str | None = None


def find_additions(mirror: Path, profile: ReferenceProfile, cache_dir: Path) -> list[Addition]:
    repo = git.Repo(mirror)
    head = repo.git.rev_parse("HEAD")
    cache = cache_dir / "references" / f"{mirror.name}-{head[:12]}.json"
    if cache.exists():
        return [Addition(**a) for a in json.loads(cache.read_text())]
    log = repo.git.log("--first-parent", "--format=%x01%H%x00%ct%x00%s", "-p", "-U0", "--no-color",
                       "HEAD", "--", *profile.registry_files)
    out = []
    for block in log.split("\x01")[1:]:
        header, _, body = block.partition("\n")
        sha, ts, subject = header.split("\x00", 2)
        lines = body.splitlines()
        added = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
        removed = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
        types = profile.added_types(added, removed)
        if types:
            m = PR_NUMBER.search(subject)
            out.append(Addition(sha=sha, timestamp=int(ts), subject=subject,
                                pr=int(m.group(1)) if m else None, model_types=types))
    touched = _files_by_commit(repo, {a.sha for a in out})
    for a in out:
        a.kinds = sorted({profile.classify(p) for p in touched.get(a.sha, [])})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([a.model_dump() for a in out]))
    return out


def _files_by_commit(repo: git.Repo, shas: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in repo.git.log("--first-parent", "--format=%x01%H", "--name-only", "HEAD").splitlines():
        if line.startswith("\x01"):
            current = line[1:] if line[1:] in shas else None
        elif current and line:
            out.setdefault(current, []).append(line)
    return out


def score(addition: Addition, analysis: dict, kind_of, base_of, newest: int) -> tuple[float, list[str]]:
    """Same family kind, same base family, same situation, then recency."""
    why, points = [], 0.0
    kinds = {kind_of(t) for t in addition.model_types}
    if analysis.get("kind") in kinds:
        points += 3
        why.append(f"same family kind ({analysis['kind']})")
    lineage = set(analysis.get("lineage", []))
    bases = {b for t in addition.model_types for b in base_of(t)}
    if lineage & bases:
        points += 2
        why.append(f"same base family ({', '.join(sorted(lineage & bases))})")
    if analysis.get("kind") != "dense" and "patcher" in addition.kinds:
        points += 1
        why.append("changed the model patcher")
    if len(addition.model_types) == 1:
        points += 0.5
        why.append("one model per change")
    age_days = max(0.0, (newest - addition.timestamp) / 86400)
    points += max(0.0, 1.0 - age_days / 730)
    return round(points, 3), why


def structured_diff(mirror: Path, rev: str, profile: ReferenceProfile, out_dir: Path | None = None) -> Reference:
    repo = git.Repo(mirror)
    try:
        sha = repo.git.rev_parse("--verify", f"{rev}^{{commit}}")
    except git.GitCommandError:
        raise UserError(f"reference {rev!r} does not exist in {mirror.name}") from None
    head = repo.git.rev_parse("HEAD")
    # A merged commit is compared with its parent; an unmerged PR head with its merge base.
    parents = repo.commit(sha).parents
    if repo.is_ancestor(sha, head) and parents:
        base = parents[0].hexsha
    else:
        base = repo.git.merge_base(head, sha)
    text = repo.git.diff(base, sha, "--no-color", "--no-ext-diff", "-M")
    patch = PatchSet(text)
    files = [{"path": f.path, "status": "added" if f.is_added_file else "removed" if f.is_removed_file
              else "modified", "kind": profile.classify(f.path), "added": f.added, "removed": f.removed}
             for f in patch]
    ref = Reference(ref=rev, sha=sha, base=base, subject=repo.commit(sha).summary, files=files,
                    patterns=profile.patterns(patch))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{sha[:12]}.diff"
        path.write_text(text)
        ref.diff_path = str(path)
    return ref


def pr_ref(mirror: Path, number: int, timeout_s: float = 120) -> str:
    """The head of pull request `number`: from the mirror's refs, else fetched from origin."""
    repo = git.Repo(mirror)
    name = f"refs/pull/{number}/head"
    try:
        return repo.git.rev_parse("--verify", name)
    except git.GitCommandError:
        pass
    try:
        repo.git.fetch("origin", f"+{name}:{name}", kill_after_timeout=timeout_s)
        return repo.git.rev_parse("--verify", name)
    except git.GitCommandError:
        raise UserError(f"pull request #{number} does not exist (or its remote is unreachable)") from None


def select(mirror: Path, profile: ReferenceProfile, analysis: dict, cache_dir: Path, *, k: int = 3,
           kind_of, base_of, out_dir: Path | None = None, explicit: list[str] | None = None) -> list[Reference]:
    if explicit:
        refs = []
        for r in explicit:
            rev = pr_ref(mirror, int(r.lstrip("#"))) if r.lstrip("#").isdigit() else r
            ref = structured_diff(mirror, rev, profile, out_dir)
            ref.ref, ref.why = r, ["chosen by the request"]
            refs.append(ref)
        return refs
    additions = [a for a in find_additions(mirror, profile, cache_dir) if analysis["model_type"] not in a.model_types]
    if not additions:
        return []
    newest = max(a.timestamp for a in additions)
    ranked = sorted(((score(a, analysis, kind_of, base_of, newest), a) for a in additions),
                    key=lambda p: (-p[0][0], -p[1].timestamp))
    out = []
    for (points, why), add in ranked[:k]:
        ref = structured_diff(mirror, add.sha, profile, out_dir)
        ref.ref = f"#{add.pr}" if add.pr else add.sha[:12]
        ref.score, ref.why, ref.model_types = points, why, add.model_types
        out.append(ref)
    return out
