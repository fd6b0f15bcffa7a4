"""Target repositories: one cached bare mirror per URL, one worktree per job.

When a repository cannot be reached, the workspace is built from the target's
source distribution on the package index and committed as the base, and the
workspace says so (the report repeats it).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import git
from pydantic import BaseModel

from tools.errors import UserError
from tools.repo.git_safe import (GIT_ENV, UnsafeRepository, check_gitdir, check_worktree, harden, open_gitdir,
                             open_worktree)

__all__ = ["GIT_ENV", "UnsafeRepository", "commit_all", "diff_against", "RepoManager"]
BOT = ("Onboarder", "onboarder@localhost")
SDIST_COMMIT_DATE = "2000-01-01T00:00:00+0000"
log = logging.getLogger(__name__)


class RepoUnavailable(RuntimeError):
    pass


class Workspace(BaseModel):
    path: Path
    base_rev: str
    source: str  # git | sdist
    origin: str  # URL, path or "pypi:<name>==<version>"
    note: str = ""


def _slug(url: str) -> str:
    tail = url.rstrip("/").split("/")[-1].removesuffix(".git") or "repo"
    return f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def git_reason(exc: git.GitCommandError) -> str:
    """The line of git's stderr that says what went wrong (its first `fatal:` or `error:`)."""
    lines = [ln.strip() for ln in (exc.stderr or "").replace("stderr:", "").strip(" '\n").splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith(("fatal:", "error:")):
            return ln.split(":", 1)[1].strip()
    return lines[-1] if lines else f"git exited with {exc.status}"


# Revisions as `rev-parse` takes them (branch, tag, commit, `main~2`), never an option or a range.
REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/~^{}@+-]{0,255}", re.ASCII)
HEX = re.compile(r"[0-9a-f]{4,40}", re.ASCII)


def normalise_repo(repo: str) -> str:
    """Local paths become absolute file paths; URLs stay as they are."""
    if any(ch < " " or ch == "\x7f" for ch in repo) or repo.startswith("-"):
        raise UserError(f"{repo!r} is not a repository URL or path")
    if "://" in repo or repo.startswith("git@"):
        return repo
    path = Path(repo).expanduser()
    if not path.exists():
        raise UserError(f"repository path does not exist: {repo}")
    if not _is_git_dir(path):
        raise UserError(f"{repo} is not a git repository (no .git, and not a bare repository)")
    return str(path.resolve())


def _is_git_dir(path: Path) -> bool:
    """A checkout (.git directory or gitfile) or a bare repository, judged by its layout: no git runs here."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def check_ref(ref: str) -> None:
    if not REF.fullmatch(ref) or ".." in ref:
        raise UserError(f"--ref {ref!r} is not a branch, tag or commit name")


@contextmanager
def file_lock(path: Path):
    """An exclusive flock on `path` (created with its parent) for the block: one process at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def commit_all(repo: git.Repo, message: str, *, date: str | None = None) -> str:
    """Commit everything; with a fixed `date` the commit id depends on the content alone."""
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}
    check_worktree(Path(repo.working_tree_dir))
    harden(repo)
    repo.git.add("-A")
    repo.git.commit(
        "-q", "--no-verify", "--allow-empty", "-m", message,
        env={**GIT_ENV, "GIT_AUTHOR_NAME": BOT[0], "GIT_AUTHOR_EMAIL": BOT[1],
             "GIT_COMMITTER_NAME": BOT[0], "GIT_COMMITTER_EMAIL": BOT[1], **dates},
    )
    return repo.head.commit.hexsha


class RepoManager:
    def __init__(self, data_dir: Path, timeout_s: float = 120.0, freshness_s: float = 3600.0, on_note=None):
        self.root = data_dir
        self.on_note = on_note or log.warning  # a face that shows notes itself passes its printer
        self.timeout = timeout_s
        self.freshness = freshness_s
        self.notes: list[str] = []  # what the user should hear about, e.g. a mirror re-cloned

    # -- mirrors ---------------------------------------------------------------
    def mirror(self, url: str, *, corrupt: str | None = None) -> Path:
        """A bare mirror of `url`, cloned once and fetched when stale.

        A mirror that fails its health check, or that the caller found `corrupt`
        while reading it, is removed and cloned again; `notes` says so.
        """
        path = self.root / "mirrors" / f"{_slug(url)}.git"
        with file_lock(path.with_suffix(".lock")):
            if path.exists():
                check_gitdir(path, url)  # a planted config is refused, never "repaired" silently
            problem = corrupt or (self._problem(path) if path.exists() else None)
            if path.exists() and problem:
                shutil.rmtree(path)  # corrupt mirror: start again rather than fail forever
                self.notes.append(f"mirror {path.name} was corrupt ({problem}); re-cloned from {url}")
                self.on_note(self.notes[-1])
            try:
                if not path.exists():
                    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".clone-"))
                    try:
                        # no_hardlinks: a local source must never share object files with a mirror
                        # we may delete or repair.
                        git.Repo.clone_from(url, tmp, mirror=True, no_hardlinks=True, env=GIT_ENV,
                                            kill_after_timeout=self.timeout)
                    except BaseException:
                        shutil.rmtree(tmp, ignore_errors=True)
                        raise
                    check_gitdir(tmp, url)
                    tmp.rename(path)
                    (path / "onboarder-fetched").write_text(str(time.time()))
                elif time.time() - self._fetched_at(path) > self.freshness:
                    open_gitdir(path, url).git.fetch("--prune", "origin", env=GIT_ENV, kill_after_timeout=self.timeout)
                    (path / "onboarder-fetched").write_text(str(time.time()))
            except git.GitCommandError as exc:
                raise RepoUnavailable(f"cannot reach {url}: {git_reason(exc)}") from exc
        return path

    @classmethod
    def _healthy(cls, path: Path) -> bool:
        return cls._problem(path) is None

    @staticmethod
    def _problem(path: Path) -> str | None:
        """Why the repository at `path` is unusable, or None.

        Reading HEAD's commit and tree opens the packs they live in, which catches a
        garbage HEAD, lost refs and truncated or overwritten pack files cheaply
        (a full fsck would cost seconds on every call).
        """
        try:
            repo = harden(git.Repo(path))
            repo.git.rev_parse("--verify", "--quiet", "HEAD^{commit}")
            repo.git.cat_file("-e", "HEAD^{tree}")
            return None
        except git.GitCommandError as exc:
            return git_reason(exc)
        except (git.GitError, ValueError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    @staticmethod
    def _fetched_at(path: Path) -> float:
        try:
            return float((path / "onboarder-fetched").read_text())
        except (OSError, ValueError):
            return 0.0

    # -- checks before anything is cloned -------------------------------------------
    def preflight(self, url: str, ref: str | None, marker: str | None) -> None:
        """Refuse an unknown `ref` or a repository without `marker` before anything is cloned or written.

        The cached mirror answers when there is one, else the source itself: a local repository is read
        in place; a remote is asked for its refs (`git ls-remote`), which tells whether a branch or tag
        exists but not whether a bare commit id does nor which files it holds: those are checked on the
        clone. Raises RepoUnavailable when the source cannot be reached.
        """
        if ref is not None:
            check_ref(ref)
        cached = self.root / "mirrors" / f"{_slug(url)}.git"
        local = not ("://" in url or url.startswith("git@"))
        if cached.is_dir() and self._healthy(cached) and self._verify(cached, ref, marker):
            return
        if local:
            self._verify(Path(url), ref, marker, strict=True)
            return
        self._ls_remote_has(url, ref)  # reachable at all? (one round trip, nothing written)

    def _verify(self, repo_path: Path, ref: str | None, marker: str | None, strict: bool = False) -> bool:
        """Whether `ref` (and `marker` in it) is in the repository; `strict` raises UserError instead of False."""
        try:
            repo = git.Repo(repo_path)
            rev = repo.git.rev_parse("--verify", "--quiet", f"{ref or 'HEAD'}^{{commit}}", env=GIT_ENV)
        except git.GitCommandError:
            if strict:
                raise UserError(f"unknown ref {ref!r} in {repo_path.name}" if ref else
                                f"{repo_path} has no commits") from None
            return False
        except (git.GitError, OSError) as exc:
            if strict:
                raise UserError(f"{repo_path} is not a readable git repository ({type(exc).__name__})") from None
            return False
        if marker and not self.has_file(repo_path, rev, marker):
            raise UserError(wrong_repository(str(repo_path), marker))
        return True

    @staticmethod
    def has_file(repo_path: Path, rev: str, path: str) -> bool:
        try:
            git.Repo(repo_path).git.cat_file("-e", f"{rev}:{path}", env=GIT_ENV)
            return True
        except git.GitCommandError:
            return False

    def _ls_remote_has(self, url: str, ref: str | None) -> None:
        try:
            listing = git.Git().ls_remote(url, env=GIT_ENV, kill_after_timeout=self.timeout)
        except git.GitCommandError as exc:
            raise RepoUnavailable(f"cannot reach {url}: {git_reason(exc)}") from exc
        if ref is None:
            return
        tips = [line.split("\t", 1) for line in listing.splitlines() if "\t" in line]
        base = re.split(r"[~^@{]", ref, maxsplit=1)[0]
        names = {n for _, n in tips}
        if {base, f"refs/heads/{base}", f"refs/tags/{base}"} & names:
            return
        if HEX.fullmatch(base.lower()):
            return  # a commit id: only the clone can tell whether it exists
        raise UserError(f"unknown ref {ref!r}: {url} has no such branch or tag")

    def resolve(self, mirror: Path, ref: str | None) -> str:
        repo = open_gitdir(mirror)
        try:
            return repo.git.rev_parse("--verify", f"{ref or 'HEAD'}^{{commit}}")
        except git.GitCommandError as exc:
            raise UserError(f"unknown ref {ref!r} in {mirror.name}") from exc

    # -- source distribution fallback -----------------------------------------
    def sdist_mirror(self, pypi_name: str, version: str) -> Path:
        """A one-commit repository holding the package's source distribution."""
        path = self.root / "mirrors" / f"sdist-{pypi_name}-{version}"
        with file_lock(path.with_suffix(".lock")):
            if path.exists() and self._healthy(path):
                open_gitdir(path)
                return path
            shutil.rmtree(path, ignore_errors=True)
            dl = Path(tempfile.mkdtemp(prefix="onboard-sdist-"))
            try:
                cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                       "--no-build-isolation", "-q", "-d", str(dl), f"{pypi_name}=={version}"]
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
                archives = list(dl.glob("*.tar.gz"))
                if res.returncode != 0 or not archives:
                    raise RepoUnavailable(f"no source distribution of {pypi_name}=={version}: "
                                          f"{(res.stderr or '').strip().splitlines()[-1:]}")
                tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".sdist-"))
                with tarfile.open(archives[0]) as tar:
                    tar.extractall(tmp, filter="data")
                (top,) = [p for p in tmp.iterdir() if p.is_dir()]
                repo = harden(git.Repo.init(top))
                # A fixed date: rebuilding the cache from the same archive gives the same base commit, so
                # the thread id (derived from it) and resumable runs survive the rebuild.
                commit_all(repo, f"Base: {pypi_name} {version} source distribution (package index)",
                           date=SDIST_COMMIT_DATE)
                top.rename(path)
                shutil.rmtree(tmp, ignore_errors=True)
            finally:
                shutil.rmtree(dl, ignore_errors=True)
        return path

    # -- worktrees -------------------------------------------------------------
    def worktree(self, mirror: Path, rev: str, dest: Path) -> Path:
        """A worktree of `mirror` at `rev` in `dest`, reset to `rev` if it exists."""
        with file_lock(mirror.parent / f"{mirror.name}.lock"):
            repo = open_gitdir(mirror)
            if dest.exists() and (dest / ".git").exists():
                self.reset(dest, rev)
                return dest
            shutil.rmtree(dest, ignore_errors=True)
            repo.git.worktree("prune")
            dest.parent.mkdir(parents=True, exist_ok=True)
            repo.git.worktree("add", "--detach", "-f", str(dest), rev)
        return dest

    @staticmethod
    def reset(worktree: Path, rev: str) -> None:
        repo = open_worktree(worktree)
        repo.git.checkout("-q", "--detach", "-f", rev)
        repo.git.reset("-q", "--hard", rev)
        repo.git.clean("-fdq")


def wrong_repository(where: str, marker: str) -> str:
    return f"{where} is not a repository of this target: it has no {marker}"


def diff_against(worktree: Path, rev: str) -> str:
    repo = open_worktree(worktree)
    repo.git.add("-A", "--intent-to-add")
    return repo.git.diff(rev, "--no-color", "--no-ext-diff", "--no-textconv")


def binary_diff(worktree: Path, rev: str) -> str:
    """The worktree's whole change since `rev` (new files and binary content too), as `apply_diff` takes it."""
    repo = open_worktree(worktree)
    repo.git.add("-A", "--intent-to-add")
    return repo.git.diff(rev, "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--full-index",
                         strip_newline_in_stdout=False)


def apply_diff(worktree: Path, diff: str) -> None:
    """Write `binary_diff`'s text onto a worktree at its base (nothing to do for an empty change)."""
    if not diff.strip():
        return
    with tempfile.NamedTemporaryFile("w", suffix=".diff", encoding="utf-8") as fh:
        fh.write(diff if diff.endswith("\n") else diff + "\n")
        fh.flush()
        open_worktree(worktree).git.apply("--whitespace=nowarn", fh.name)


def changed_files(worktree: Path) -> set[str]:
    """Paths the worktree changed, added or deleted since its last commit."""
    out = open_worktree(worktree).git.status("--porcelain")
    return {line[3:] for line in out.splitlines() if line}


def has_path(worktree: Path, rel: str) -> bool:
    return (worktree / rel).exists()


def env_without_git_prompts() -> dict:
    return {**os.environ, **GIT_ENV}
