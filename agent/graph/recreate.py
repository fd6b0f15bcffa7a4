"""Re-create on this worker what a checkpoint points to on disk, so workers need not share a data dir.

Scale mode keeps the graph's state in Postgres, but the state names files
(the job dir, the config, the target's mirror, the worktree, the tiny model,
the reference diffs) on the machine that ran the first nodes. The state is
read through agent.graph.localise, so every path is already this worker's;
here each missing or stale file is rebuilt from what the state keeps:

- the config from the analysis' raw config, or resolved again and checked
  against the digest the request recorded;
- the mirror from the workspace's origin (a URL, or the package index's
  source distribution, whose commit is reproducible), fetched when it lacks
  the base revision;
- the worktree at the base revision plus the candidate's change, which the
  implementing node keeps in the state (`patch.diff`);
- the tiny model rebuilt from the config with the same seed, and refused
  unless its digest equals the one the tiny node recorded: a resumed verify
  must give the numbers the first worker would have given.

What cannot be re-created (an LLM conversation, a change too large to keep
in the checkpoint, a repository this worker cannot reach) ends the job with
one line naming it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tools.errors import UserError

log = logging.getLogger(__name__)


class CannotRecreate(UserError):
    """A file the checkpoint needs is on another worker's disk only."""


def recreate(state: dict, settings, *, repos=None, worker: str = "this worker") -> list[str]:
    """Make every file `state` (localised) needs exist here; what was re-created, for the log."""
    import git

    from tools.repo.workspace import RepoManager, git_reason

    repos = repos or RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s)
    done: list[str] = []
    job_dir = Path(state["job_dir"])
    if not job_dir.is_dir():
        job_dir.mkdir(parents=True)
        done.append("job dir")
    try:
        _config(state, done)
        mirror = _mirror(state, settings, repos, done)
        _worktree(state, repos, mirror, done)
        _tiny(state, settings, done)
        _references(state, settings, mirror, done)
        _trajectory(state)
    except CannotRecreate as exc:
        raise CannotRecreate(f"cannot resume here ({worker}): {exc}") from None
    except git.GitCommandError as exc:  # e.g. the kept change does not apply to the base revision
        raise CannotRecreate(f"cannot resume here ({worker}): the worktree (git: {git_reason(exc)})") from None
    return done


def _config(state: dict, done: list[str]) -> None:
    request = state.get("request") or {}
    path = Path(request["config_path"]) if request.get("config_path") else None
    if path is None or path.is_file():
        return
    raw = (state.get("analysis") or {}).get("raw_config")
    if raw is None:
        raw = _resolve_again(request)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2))  # as agent.graph.request.prepare wrote it
    done.append("config")


def _resolve_again(request: dict) -> dict:
    from agent.graph.request import config_digest
    from tools.hf.config import ConfigError, load_config

    want = request.get("config_sha256")
    if not want:
        raise CannotRecreate("the config file (the checkpoint predates config digests, so a config resolved "
                             "again could not be checked)")
    try:
        raw = load_config(request["model"]).raw
    except ConfigError as exc:
        raise CannotRecreate(f"the config file ({request['model']} does not resolve here: {exc})") from None
    if config_digest(raw) != want:
        raise CannotRecreate(f"the config file ({request['model']} resolves here to another config than the "
                             "checkpoint's)")
    return raw


def _mirror(state: dict, settings, repos, done: list[str]) -> Path | None:
    from tools.repo.workspace import RepoManager, RepoUnavailable

    request, ws = state.get("request") or {}, state.get("workspace") or {}
    if not request.get("mirror") or not ws.get("base_rev"):
        return None
    mirror, rev, origin = Path(request["mirror"]), ws["base_rev"], ws.get("origin", "")
    if mirror.exists() and _has_commit(mirror, rev):
        return mirror
    try:
        if origin.startswith("pypi:"):
            name, _, version = origin.removeprefix("pypi:").partition("==")
            got = repos.sdist_mirror(name, version)
        else:  # freshness 0: a mirror this worker fetched before the base revision existed must fetch now
            got = RepoManager(repos.root, repos.timeout, 0.0, on_note=repos.on_note).mirror(origin)
    except (RepoUnavailable, UserError) as exc:
        raise CannotRecreate(f"the target's mirror ({exc})") from None
    if got != mirror or not _has_commit(got, rev):
        raise CannotRecreate(f"the base revision {rev[:12]} (not in {origin or mirror.name} as seen from here)")
    done.append("mirror")
    return got


def _has_commit(mirror: Path, rev: str) -> bool:
    import git

    from tools.repo.git_safe import open_gitdir

    try:
        open_gitdir(mirror).git.cat_file("-e", f"{rev}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def _worktree(state: dict, repos, mirror: Path | None, done: list[str]) -> None:
    from tools.repo.workspace import apply_diff, binary_diff

    ws, patch = state.get("workspace") or {}, state.get("patch") or {}
    if not ws.get("path") or mirror is None or Path(ws["path"]) == mirror:
        return  # intake has not run: it makes the worktree itself
    dest, rev = Path(ws["path"]), ws["base_rev"]
    present = (dest / ".git").exists()
    if patch and patch.get("diff") is None:
        if present:
            return  # this worker's own worktree, from before changes were kept in the state: as it is
        why = patch.get("diff_omitted") or "written before changes were kept in the checkpoint"
        raise CannotRecreate(f"the worktree (the change of candidate {patch.get('candidate')} is not in the "
                             f"checkpoint: {why})")
    want = patch.get("diff") or ""
    # An existing worktree may hold what this worker wrote on an earlier run of the job: only the state says
    # what the current candidate is.
    if present and binary_diff(dest, rev) == want:
        return
    repos.worktree(mirror, rev, dest)
    apply_diff(dest, want)
    done.append("worktree")


def _tiny(state: dict, settings, done: list[str]) -> None:
    from tools.tiny.model import TinyModelError, build_tiny, check_invariants, digest

    tiny = state.get("tiny") or {}
    if not tiny.get("path"):
        return
    path, want = Path(tiny["path"]), tiny.get("digest")
    if check_invariants(path) is None:
        if not want:
            raise CannotRecreate("the tiny model (the checkpoint has no digest to check a rebuilt one against)")
        raw = (state.get("analysis") or {}).get("raw_config")
        try:
            built = build_tiny(raw, settings.caches / "tiny")
        except TinyModelError as exc:
            raise CannotRecreate(f"the tiny model (rebuilding it failed: {exc})") from None
        if built.path != path:
            raise CannotRecreate(f"the tiny model (rebuilt as {built.path.name}, not {path.name})")
        done.append("tiny model")
    if want and (got := digest(path)) != want:
        raise CannotRecreate(f"the tiny model (this worker's copy has digest {got[:12]}, the checkpoint's "
                             f"{want[:12]}: another torch or transformers build makes other weights)")


def _references(state: dict, settings, mirror: Path | None, done: list[str]) -> None:
    refs = [r for r in state.get("references") or [] if r.get("diff_path") and not Path(r["diff_path"]).is_file()]
    if not refs or mirror is None:
        return
    from tools.repo.references import structured_diff
    from tools.targets import get_target

    profile = get_target(state["request"]["target"], settings.caches).references()
    for ref in refs if profile is not None else []:
        try:
            structured_diff(mirror, ref["sha"], profile, Path(ref["diff_path"]).parent)
        except Exception as exc:  # the LLM's view of references shows patterns without the diff
            log.warning("reference %s not re-created: %s", ref.get("ref"), exc)
            continue
        done.append(f"reference {ref['sha'][:12]}")


def _trajectory(state: dict) -> None:
    path = (state.get("llm") or {}).get("trajectory")
    if path and not Path(path).is_file():
        raise CannotRecreate("the LLM implementer's trajectory (its conversation and spent budget are kept "
                             "only on the worker that ran it)")
