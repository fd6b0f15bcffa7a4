"""Host-side git that the code under verification cannot program.

Git runs programs named by configuration: hooks, `core.fsmonitor`, filter and
textconv drivers, `core.sshCommand`, `gpg.program`, `ext::` remotes, and
reads includes. The workspaces we verify are worktrees of shared mirrors, so
a repository config changed by anything that ever reached a worktree would run
on the host, as us, with our tokens. Two layers stop that:

- every git we start reads no system or global config and is told, at
  command scope (which beats the repository's), to run no hook, no fsmonitor,
  no signing program, no `ext::` transport, and ssh in batch mode;
- before a repository is used, its config must hold only the keys git itself
  writes for our clones, worktrees and bare remotes, its files must be ours,
  its hooks directory only samples, and a worktree's `.git` file must point
  at a worktree entry of such a repository that points back at it. Anything
  else is refused with `UnsafeRepository`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git

# Command-scope config (GIT_CONFIG_COUNT): outranks anything in a repository's config.
HARDENING = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.sshCommand", "ssh -oBatchMode=yes"),
    ("core.pager", "cat"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"),
)
BASE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND": "ssh -oBatchMode=yes",
    "GIT_PAGER": "cat",
}
# What git writes into the config of a mirror clone, a worktree's common dir, an
# `init`ed or bare repository: anything else was put there by someone else.
_BOOL = {"true", "false"}
ALLOWED = {
    "core.repositoryformatversion": {"0", "1"},
    "core.filemode": _BOOL, "core.bare": _BOOL, "core.logallrefupdates": _BOOL,
    "core.ignorecase": _BOOL, "core.precomposeunicode": _BOOL, "core.symlinks": _BOOL,
    "remote.origin.url": None, "remote.origin.fetch": None, "remote.origin.mirror": _BOOL,
    "extensions.objectformat": {"sha1", "sha256"},
}


class UnsafeRepository(RuntimeError):
    """A repository whose config or git files are not what we wrote: refused, never used."""


def git_env(*extra: tuple[str, str], **variables: str) -> dict[str, str]:
    """Environment for one git child: the hardening, then `extra` config entries, then `variables`."""
    env = dict(BASE_ENV)
    entries = [*HARDENING, *extra]
    env["GIT_CONFIG_COUNT"] = str(len(entries))
    for i, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    env.update(variables)
    return env


GIT_ENV = git_env()


def _own(path: Path, what: str) -> None:
    st = path.lstat()
    if st.st_uid != os.geteuid():
        raise UnsafeRepository(f"{what} {path} belongs to uid {st.st_uid}, not to us: refusing to use it")


def check_gitdir(gitdir: Path, url: str | None = None) -> None:
    """Refuse a repository (its git dir) whose config, hooks or ownership are not what we wrote."""
    config = gitdir / "config"
    if config.is_symlink() or not config.is_file():
        raise UnsafeRepository(f"{config} is missing or not a regular file: refusing the repository")
    _own(config, "git config")
    res = subprocess.run(["git", "config", "--file", str(config), "--list", "--null"],
                         env={"PATH": os.environ.get("PATH", os.defpath), **GIT_ENV}, capture_output=True, timeout=30)
    if res.returncode != 0:
        raise UnsafeRepository(f"{config} does not parse: refusing the repository")
    for item in res.stdout.decode("utf-8", "replace").split("\0"):
        if not item:
            continue
        key, _, value = item.partition("\n")
        allowed = ALLOWED.get(key.lower(), ())
        if allowed == () or (allowed is not None and value.lower() not in allowed):
            raise UnsafeRepository(f"{config} sets {key}, which we never write (a planted command?): "
                                   "refusing the repository; remove it to start over")
        if key.lower() == "remote.origin.url" and url is not None and value not in (url, git.Git.polish_url(url)):
            raise UnsafeRepository(f"{config}: origin is {value!r}, not {url!r}: refusing the repository")
    hooks = gitdir / "hooks"
    if hooks.is_symlink():
        raise UnsafeRepository(f"{hooks} is a symlink: refusing the repository")
    if hooks.is_dir():
        active = sorted(p.name for p in hooks.iterdir() if not p.name.endswith(".sample"))
        if active:
            raise UnsafeRepository(f"{hooks} holds {', '.join(active[:3])}, which we never write: "
                                   "refusing the repository")


def check_worktree(path: Path) -> None:
    """Refuse `path` unless its `.git` is what `git worktree add` (or `init`) wrote for us."""
    dot = Path(path) / ".git"
    if dot.is_symlink():
        raise UnsafeRepository(f"{dot} is a symlink: refusing the worktree")
    if dot.is_dir():
        check_gitdir(dot)
        return
    if not dot.is_file():
        raise UnsafeRepository(f"{path} is not a git worktree (no .git)")
    _own(dot, "git file")
    text = dot.read_text(errors="replace")
    if not text.startswith("gitdir: ") or text.count("\n") > 1:
        raise UnsafeRepository(f"{dot} is not a gitfile we wrote: refusing the worktree")
    entry = Path(text[len("gitdir: "):].strip())
    if not entry.is_absolute() or entry.parent.name != "worktrees" or entry.is_symlink() or not entry.is_dir():
        raise UnsafeRepository(f"{dot} points at {entry}, not at a worktree entry: refusing the worktree")
    for name, want in (("commondir", "../.."), ("gitdir", os.path.realpath(dot))):
        f = entry / name
        if f.is_symlink() or not f.is_file():
            raise UnsafeRepository(f"{f} is missing: refusing the worktree")
        _own(f, "git file")
        got = f.read_text(errors="replace").strip()
        if (os.path.realpath(got) if name == "gitdir" else got) != want:
            raise UnsafeRepository(f"{f} says {got!r}, not {want!r}: refusing the worktree")
    if (entry / "config.worktree").exists():
        raise UnsafeRepository(f"{entry}/config.worktree exists, which we never write: refusing the worktree")
    check_gitdir(entry.parent.parent)


def harden(repo: git.Repo) -> git.Repo:
    repo.git.update_environment(**GIT_ENV)
    return repo


def open_worktree(path: Path) -> git.Repo:
    """A checked, hardened repository object for the worktree (or plain repository) at `path`."""
    check_worktree(Path(path))
    return harden(git.Repo(path))


def open_gitdir(path: Path, url: str | None = None) -> git.Repo:
    """A checked, hardened repository object for the bare repository (mirror, remote) at `path`."""
    gitdir = Path(path)
    check_gitdir(gitdir if (gitdir / "config").is_file() else gitdir / ".git", url)
    return harden(git.Repo(gitdir))
