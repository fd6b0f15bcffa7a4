"""Reference pull requests: how earlier models were onboarded, read from git.

`find_additions` walks the target's history once (cached per HEAD) for commits
that added a model registration; `score` ranks them against the current
analysis; `structured_diff` reduces one reference to files, hunks, classes and
patterns. Targets supply a `ReferenceProfile` saying what a registration looks
like and how to classify their files. The kind and base family of every
registered type is kept on disk too (`type_facts`): asking transformers costs
seconds per process, and warm selection has to stay well under two.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Protocol

import git
from pydantic import BaseModel, Field
from unidiff import PatchSet

from tools.errors import UserError
from tools.repo.git_safe import GIT_ENV, open_gitdir
from tools.repo.workspace import git_reason

PR_NUMBER = re.compile(r"\(#(\d+)\)\s*$")
SAFE = re.compile(r"[^\w.-]")


class ReferenceProfile(Protocol):
    registry_files: tuple[str, ...]
    kind_of: Callable[[str], str]  # model type -> family kind (dense, moe, ...)
    base_of: Callable[[str], tuple[str, ...]]  # model type -> the families it is built from

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
    """Every commit on HEAD's first-parent line that registered a new model type.

    Cached on disk keyed by the mirror's HEAD sha: a fetch that moves HEAD makes
    the next call rescan, and older scans of that mirror are dropped.
    """
    repo = open_gitdir(mirror)
    head = repo.git.rev_parse("HEAD")
    stem = f"{mirror.name}-{type(profile).__name__}"
    cache = cache_dir / "references" / f"{stem}-{head[:12]}.json"
    cached = _read_json(cache)
    if isinstance(cached, list):
        return [Addition(**a) for a in cached]
    out = _scan(repo, profile)
    for old in cache.parent.glob(f"{stem}-*.json"):
        old.unlink(missing_ok=True)
    _write_json(cache, [a.model_dump() for a in out])
    return out


def _scan(repo: git.Repo, profile: ReferenceProfile) -> list[Addition]:
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
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing, or half-written by a killed run: recompute
        return None


def _write_json(path: Path, data) -> None:
    # Written aside and renamed: concurrent jobs share the cache and must never read half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def type_facts(types: set[str], kind_of, base_of, cache_dir: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """kind and base families of each type, through a disk cache when the callables name one.

    Asking transformers about ~200 registered types imports their config modules
    (seconds per process); a callable with a `cache_key` attribute (e.g. the
    transformers version) lets the answers be reused across processes.
    """
    key = getattr(kind_of, "cache_key", None)
    path = None
    if key and key == getattr(base_of, "cache_key", None):
        path = cache_dir / "references" / f"types-{SAFE.sub('_', key)}.json"
    cached = _read_json(path) if path else None
    known = {t: (k, tuple(b)) for t, (k, b) in cached.items()} if isinstance(cached, dict) else {}
    missing = sorted(set(types) - known.keys())
    for t in missing:
        known[t] = (kind_of(t), tuple(base_of(t)))
    if path and missing:
        _write_json(path, {t: [k, list(b)] for t, (k, b) in known.items()})
    return known


def _files_by_commit(repo: git.Repo, shas: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    # --no-renames: names only, so no blob is read (a checkout with missing blobs still lists them)
    for line in repo.git.log("--first-parent", "--no-renames", "--format=%x01%H", "--name-only", "HEAD").splitlines():
        if line.startswith("\x01"):
            current = line[1:] if line[1:] in shas else None
        elif current and line:
            out.setdefault(current, []).append(line)
    return out


def score(addition: Addition, analysis: dict, kind_of, base_of, newest: int) -> tuple[float, list[str]]:
    """Same family kind (with its patcher work), same base family, one model per change, then recency.

    For a non-dense kind the patcher is where the work is (an MoE forward, a state
    cache), so a same-kind change that touched it outranks any same-kind change that
    did not, whatever their lineage and age: 4 > lineage 2 + single model 0.5 + recency 1.
    """
    why, points = [], 0.0
    kinds = {kind_of(t) for t in addition.model_types}
    kind = analysis.get("kind")
    patcher = kind != "dense" and "patcher" in addition.kinds
    if kind in kinds:
        points += 3
        why.append(f"same family kind ({kind})")
        if patcher:
            points += 4
            why.append("changed the model patcher")
    elif patcher:
        points += 1
        why.append("changed the model patcher")
    lineage = set(analysis.get("lineage", []))
    bases = {b for t in addition.model_types for b in base_of(t)}
    if lineage & bases:
        points += 2
        why.append(f"same base family ({', '.join(sorted(lineage & bases))})")
    if len(addition.model_types) == 1:
        points += 0.5
        why.append("one model per change")
    age_days = max(0.0, (newest - addition.timestamp) / 86400)
    points += max(0.0, 1.0 - age_days / 730)
    return round(points, 3), why


def structured_diff(mirror: Path, rev: str, profile: ReferenceProfile, out_dir: Path | None = None) -> Reference:
    repo = open_gitdir(mirror)
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
    """Pull request `number`: its merged commit on HEAD's line, else its head from the mirror's
    refs, else fetched from origin."""
    repo = open_gitdir(mirror)
    merged = repo.git.log("--first-parent", "--format=%H", "-E", f"--grep=\\(#{number}\\)$", "HEAD")
    if merged:
        return merged.splitlines()[0]
    name = f"refs/pull/{number}/head"
    try:
        return repo.git.rev_parse("--verify", "--quiet", name)
    except git.GitCommandError:
        pass
    try:
        repo.git.fetch("origin", f"+{name}:{name}", env=GIT_ENV, kill_after_timeout=timeout_s)
        return repo.git.rev_parse("--verify", name)
    except git.GitCommandError as exc:
        reason = git_reason(exc)
        origin = next((r.url for r in repo.remotes if r.name == "origin"), mirror.name)
        if "couldn't find remote ref" in reason or "not our ref" in reason:
            raise UserError(f"pull request #{number} does not exist in {origin} "
                            f"(no merged commit ending in (#{number}), no {name})") from None
        raise UserError(f"pull request #{number} is not merged in {origin} and cannot be fetched: "
                        f"{reason}") from None


def select(mirror: Path, profile: ReferenceProfile, analysis: dict, cache_dir: Path, *, k: int = 3,
           kind_of, base_of, out_dir: Path | None = None, explicit: list[str] | None = None) -> list[Reference]:
    if explicit:
        refs = []
        for r in explicit:
            rev = pr_ref(mirror, int(r.lstrip("#"))) if r.lstrip("#").isdigit() else r
            ref = structured_diff(mirror, rev, profile, out_dir)
            ref.ref, ref.why = f"#{r.lstrip('#')}" if r.lstrip("#").isdigit() else r, ["chosen by the request"]
            refs.append(ref)
        return refs
    additions = [a for a in find_additions(mirror, profile, cache_dir) if analysis["model_type"] not in a.model_types]
    if not additions:
        return []
    facts = type_facts({t for a in additions for t in a.model_types}, kind_of, base_of, cache_dir)
    newest = max(a.timestamp for a in additions)
    ranked = sorted(((score(a, analysis, lambda t: facts[t][0], lambda t: facts[t][1], newest), a)
                     for a in additions),
                    key=lambda p: (-p[0][0], -p[1].timestamp))
    out = []
    for (points, why), add in ranked[:k]:
        ref = structured_diff(mirror, add.sha, profile, out_dir)
        ref.ref = f"#{add.pr}" if add.pr else add.sha[:12]
        ref.score, ref.why, ref.model_types = points, why, add.model_types
        out.append(ref)
    return out
