"""A checkpoint written on a worker with another data dir: its paths read as this worker's
(agent.graph.localise), and what they name is re-created here or named in one line (agent.graph.recreate)."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from agent.graph.localise import localise
from agent.graph.recreate import CannotRecreate, recreate
from agent.settings import Settings
from tools.repo.workspace import RepoManager, Workspace, binary_diff, commit_all

RAW = {"model_type": "toy", "hidden_size": 8}


def _first_worker(tmp_path: Path) -> tuple[dict, Settings]:
    """A state as worker A's nodes leave it after `implement`: its worktree holds a candidate's change."""
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "model.py").write_text("X = 1\n")
    (up / "old.txt").write_text("gone\n")
    commit_all(repo, "base")
    a = Settings(data_dir=tmp_path / "a")
    repos = RepoManager(a.caches)
    mirror = repos.mirror(str(up))
    rev = repos.resolve(mirror, None)
    tid = "optimum-intel-toy-0123456789ab"
    job = a.path("jobs", tid)
    ws = repos.worktree(mirror, rev, job / "workspace")
    (job / "config.json").write_text(json.dumps(RAW, indent=2))
    (ws / "model.py").write_text("X = 2\n")
    (ws / "new.py").write_text("Y = 'new file'\n")
    (ws / "weights.bin").write_bytes(bytes(range(256)))
    (ws / "old.txt").unlink()
    state = {"request": {"model": "toy", "target": "optimum-intel", "config_path": str(job / "config.json"),
                         "mirror": str(mirror)},
             "thread_id": tid, "job_dir": str(job), "model_type": "toy",
             "workspace": {**Workspace(path=ws, base_rev=rev, source="git", origin=str(up)).model_dump(mode="json")},
             "analysis": {"model_type": "toy", "raw_config": RAW},
             "patch": {"candidate": "c0", "files": ["model.py"], "diff": binary_diff(ws, rev)},
             "attempts": [{"candidate": "c0", "report": str(job / "attempt-0" / "verification.json"),
                           "diff": str(job / "attempt-0" / "change.diff")}]}
    return state, a


def _files(ws: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(ws.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(ws).parts}


def test_paths_of_another_data_dir_read_as_this_workers(tmp_path):
    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    here = localise(state, b)
    job = b.path("jobs", state["thread_id"])
    assert here["job_dir"] == str(job) and here["workspace"]["path"] == str(job / "workspace")
    assert here["request"]["config_path"] == str(job / "config.json")
    assert here["request"]["mirror"] == str(b.caches / "mirrors" / Path(state["request"]["mirror"]).name)
    assert here["attempts"][0]["diff"] == str(job / "attempt-0" / "change.diff")
    assert here["patch"]["diff"] == state["patch"]["diff"] and state["job_dir"].startswith(str(a.data_dir))
    assert localise(state, a) == state  # on the machine that wrote it: the same state
    odd = {**state, "request": {**state["request"], "config_path": "/somewhere/else/config.json"}}
    assert localise(odd, b)["request"]["config_path"] == "/somewhere/else/config.json"  # not a job file


def test_a_worker_with_another_data_dir_recreates_job_dir_config_mirror_and_worktree(tmp_path):
    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    here = localise(state, b)
    made = recreate(here, b)
    assert made == ["job dir", "config", "mirror", "worktree"]
    ws_a, ws_b = Path(state["workspace"]["path"]), Path(here["workspace"]["path"])
    assert _files(ws_b) == _files(ws_a) and not (ws_b / "old.txt").exists()
    assert binary_diff(ws_b, state["workspace"]["base_rev"]) == state["patch"]["diff"]
    assert Path(here["request"]["config_path"]).read_bytes() == Path(state["request"]["config_path"]).read_bytes()
    assert recreate(here, b) == []  # all in place now


def test_a_stale_worktree_of_an_earlier_run_here_is_brought_to_the_states_candidate(tmp_path):
    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    here = localise(state, b)
    recreate(here, b)
    ws = Path(here["workspace"]["path"])
    (ws / "model.py").write_text("X = 'an older candidate'\n")
    assert recreate(here, b) == ["worktree"]
    assert (ws / "model.py").read_text() == "X = 2\n"


def test_before_implement_the_worktree_is_the_base(tmp_path):
    state, a = _first_worker(tmp_path)
    del state["patch"]
    b = Settings(data_dir=tmp_path / "b")
    here = localise(state, b)
    recreate(here, b)
    assert (Path(here["workspace"]["path"]) / "model.py").read_text() == "X = 1\n"


def test_what_cannot_be_recreated_is_named_in_one_line(tmp_path):
    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    big = {**state, "patch": {"candidate": "c0", "diff": None, "diff_omitted": "300000 bytes, over the 262144"}}
    with pytest.raises(CannotRecreate, match=r"cannot resume here \(w2@h\): the worktree .*c0.*300000 bytes"):
        recreate(localise(big, b), b, worker="w2@h")
    llm = {**state, "llm": {"rounds": 1, "trajectory": str(Path(state["job_dir"]) / "trajectory.json")}}
    with pytest.raises(CannotRecreate, match="LLM implementer's trajectory") as exc:
        recreate(localise(llm, b), b)
    assert "\n" not in str(exc.value)
    gone = {**state, "workspace": {**state["workspace"], "origin": str(tmp_path / "nowhere")},
            "request": {**state["request"], "mirror": str(tmp_path / "a" / "cache" / "mirrors" / "nowhere.git")}}
    with pytest.raises(CannotRecreate, match="the target's mirror"):
        recreate(localise(gone, b), b)


def test_a_config_resolved_again_must_match_the_requests_digest(tmp_path):
    from agent.graph.request import config_digest
    from tools.hf.config import load_config

    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    early = {k: v for k, v in state.items() if k not in ("analysis", "patch")}  # killed before analyze
    early["request"] = {**state["request"], "model": "cwm", "config_sha256": config_digest(load_config("cwm").raw)}
    here = localise(early, b)
    recreate(here, b)
    assert json.loads(Path(here["request"]["config_path"]).read_text()) == load_config("cwm").raw
    Path(here["request"]["config_path"]).unlink()
    here["request"]["config_sha256"] = "0" * 64
    with pytest.raises(CannotRecreate, match="resolves here to another config"):
        recreate(here, b)


def test_the_tiny_model_is_rebuilt_identical_or_refused(tmp_path):
    from tools.hf.config import load_config
    from tools.tiny.model import build_tiny, digest

    state, a = _first_worker(tmp_path)
    raw = load_config("cwm").raw
    built = build_tiny(raw, a.caches / "tiny")
    state["analysis"] = {"model_type": "cwm", "raw_config": raw}
    state["tiny"] = {"path": str(built.path), "digest": digest(built.path)}
    b = Settings(data_dir=tmp_path / "b")
    here = localise(state, b)
    assert "tiny model" in recreate(here, b)
    assert digest(Path(here["tiny"]["path"])) == state["tiny"]["digest"]  # same seed, same weights
    here["tiny"]["digest"] = "f" * 64  # as if this worker's torch drew other weights
    with pytest.raises(CannotRecreate, match="tiny model .*digest"):
        recreate(here, b)


def test_the_change_kept_in_the_state_is_bounded(tmp_path, monkeypatch):
    from agent.graph import context

    state, a = _first_worker(tmp_path)
    ws, rev = Path(state["workspace"]["path"]), state["workspace"]["base_rev"]
    kept = context.carried_diff(ws, rev)
    assert kept == {"diff": state["patch"]["diff"]} and "GIT binary patch" in kept["diff"]
    monkeypatch.setattr(context, "CARRIED_DIFF_MAX", 100)
    omitted = context.carried_diff(ws, rev)
    assert omitted["diff"] is None and "over the 100 kept in the checkpoint" in omitted["diff_omitted"]


class _Died(BaseException):
    """The process dying mid-verify (nothing may catch it)."""


def test_a_run_killed_mid_verify_resumes_from_a_moved_data_dir_without_its_files(tmp_path):
    """The graph's nodes read the state's paths as this machine's: verify and publish run on the re-created
    worktree (the old paths are gone), and nothing before verify runs again."""
    import shutil

    from agent.graph.deps import Deps
    from agent.graph.run import drive, stored_state
    from tests.fakes.graph_job import local_job
    from tests.fakes.scripted_target import ScriptedTarget
    from tools.forge.local import LocalForge

    config = {"model_type": "newmodel", "architectures": ["NewModelForCausalLM"], "hidden_size": 64}
    settings, repos, initial = local_job(tmp_path, "scripted", config, {"registry.py": "REGISTERED = None\n"})
    tid = initial["thread_id"]

    def deps(s, target):
        return Deps(settings=s, target=target, forge=LocalForge(s.data_dir), repos=RepoManager(s.caches),
                    sandbox_factory=lambda: type("S", (), {"name": "none", "warning": None})())

    first = ScriptedTarget(passing={"a"}, die_on_verify=1, die_with=_Died, needs_tiny_model=False)
    with pytest.raises(_Died):
        drive(settings, deps(settings, first), tid, initial)
    moved = settings.data_dir.rename(tmp_path / "moved")  # checkpoints and mirror move; the job's files do not
    shutil.rmtree(moved / "jobs" / tid)
    here = Settings(data_dir=moved)
    state = stored_state(here, tid)
    assert recreate(state, here) == ["job dir", "worktree"]
    second = ScriptedTarget(passing={"a"}, needs_tiny_model=False)
    final, how = drive(here, deps(here, second), tid, None)
    assert how == "resumed" and final["outcome"] == "pr" and second.verified == ["alias:a"] and second.applied == []
    (record,) = LocalForge(moved).records()
    assert "REGISTERED = 'newmodel'" in Path(record.diff_path).read_text()
    assert final["job_dir"] == str(moved / "jobs" / tid) and (moved / "jobs" / tid / "report.json").is_file()


def test_a_kept_change_that_does_not_apply_is_named_in_one_line(tmp_path):
    state, a = _first_worker(tmp_path)
    b = Settings(data_dir=tmp_path / "b")
    bad = {**state, "patch": {"candidate": "c0", "diff": state["patch"]["diff"].replace("-X = 1", "-X = 9")}}
    with pytest.raises(CannotRecreate, match=r"cannot resume here \(this worker\): the worktree \(git: ") as exc:
        recreate(localise(bad, b), b)
    assert "\n" not in str(exc.value)
