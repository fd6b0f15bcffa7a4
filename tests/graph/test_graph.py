"""The graph's routing, checkpointing and resume, with a scripted target.

The target double stands in for a framework adapter so the test can decide
which candidate passes and when the process "dies"; git, the forge and the
checkpointer are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.graph.deps import Deps
from agent.graph.request import thread_id_for
from agent.graph.run import drive
from tests.fakes.graph_job import local_job
from tests.fakes.tiny import fake_tiny
from tools.forge.local import LocalForge
from tests.fakes.scripted_target import ScriptedTarget as SharedScripted


class Killed(BaseException):
    """Stands for the process dying mid-node (not an Exception: nothing may catch it)."""


class ScriptedTarget(SharedScripted):
    def __init__(self, passing: set[str], die_on_verify: int | None = None):
        super().__init__(passing, die_on_verify, die_with=Killed)


@pytest.fixture
def env(tmp_path, monkeypatch):
    import tools.tiny.model

    monkeypatch.setattr(tools.tiny.model, "build_tiny", fake_tiny(tmp_path))
    return local_job(tmp_path, "scripted", {"model_type": "newmodel", "architectures": ["NewModelForCausalLM"],
                                            "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                            "vocab_size": 1000}, {"registry.py": "REGISTERED = None\n"})




def _deps(settings, repos, target):
    return Deps(settings=settings, target=target, forge=LocalForge(settings.data_dir), repos=repos,
                sandbox_factory=lambda: type("S", (), {"name": "none", "warning": None})())


def test_next_candidate_after_failure_then_publish(env):
    settings, repos, initial = env
    target = ScriptedTarget(passing={"b"})
    state, how = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert how == "started" and state["outcome"] == "pr"
    assert target.verified == ["alias:a", "alias:b"]
    assert [a["passed"] for a in state["attempts"]] == [False, True]
    body = Path(state["pr"]["body_path"]).read_text()
    assert "alias:a" in body and "scripted_compare" in body
    # the same request again reports the finished run; nothing runs twice
    state2, how2 = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert how2 == "finished_before" and target.verified == ["alias:a", "alias:b"]
    assert len(LocalForge(settings.data_dir).records()) == 1


def test_refusal_when_nothing_passes(env):
    settings, repos, initial = env
    target = ScriptedTarget(passing=set())
    state, _ = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert state["outcome"] in ("refused", "needs_llm")
    assert "distance 0.5" in state["message"]
    assert not LocalForge(settings.data_dir).records()
    report = json.loads((Path(initial["job_dir"]) / "report.json").read_text())
    assert report["outcome"] == state["outcome"] and len(report["attempts"]) == 3


def test_killed_during_verify_resumes_without_redoing_edits(env):
    settings, repos, initial = env
    target = ScriptedTarget(passing={"a"}, die_on_verify=1)
    with pytest.raises(Killed):
        drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert not LocalForge(settings.data_dir).records()
    target.die_on_verify = None
    state, how = drive(settings, _deps(settings, repos, target), initial["thread_id"], None)
    assert how == "resumed" and state["outcome"] == "pr"
    assert target.applied == ["alias:a"]  # implement finished before the kill: not repeated
    assert len(LocalForge(settings.data_dir).records()) == 1


def test_a_live_thread_cannot_be_driven_twice(tmp_path):
    from tools.errors import UserError
    from agent.graph.run import thread_lock
    from agent.settings import Settings

    settings = Settings(data_dir=tmp_path)
    with thread_lock(settings, "t1"):
        with pytest.raises(UserError, match="already running"):
            with thread_lock(settings, "t1"):
                pass
        with thread_lock(settings, "t2"):  # other threads are independent
            pass
    with thread_lock(settings, "t1"):  # released when the holder finishes
        pass


def test_an_llm_endpoint_makes_a_new_run_of_the_same_request():
    plain = thread_id_for("optimum-intel", "jetmoe", "h", "rev")
    assert plain == thread_id_for("optimum-intel", "jetmoe", "h", "rev")
    assert thread_id_for("optimum-intel", "jetmoe", "h", "rev", with_llm=True) != plain


def test_tiny_model_failure_ends_the_run_cleanly(env, monkeypatch):
    import tools.tiny.model

    def broken(raw, cache_dir, **kw):
        raise tools.tiny.model.TinyModelError("tiny newmodel failed validation: reload failed")

    monkeypatch.setattr(tools.tiny.model, "build_tiny", broken)
    settings, repos, initial = env
    target = ScriptedTarget(passing={"a"})
    state, how = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert state["outcome"] == "tiny_failed" and "reload failed" in state["message"]
    assert target.verified == [] and not LocalForge(settings.data_dir).records()
    report = json.loads((Path(initial["job_dir"]) / "report.json").read_text())
    assert report["outcome"] == "tiny_failed"


def test_a_target_without_a_tiny_model_skips_the_tiny_node():
    from types import SimpleNamespace

    from agent.graph.build import after_references

    assert after_references({}, SimpleNamespace(target=ScriptedTarget(set()))) == "tiny"
    no_tiny = ScriptedTarget(set())
    no_tiny.needs_tiny_model = False
    assert after_references({}, SimpleNamespace(target=no_tiny)) == "implement"


def test_no_host_path_in_the_pr_body_or_commit(env):
    """A reviewer reads the body and the commit elsewhere: no data dir, cache, worktree or home path."""
    import git
    import os

    settings, repos, initial = env
    state, _ = drive(settings, _deps(settings, repos, ScriptedTarget(passing={"a"})), initial["thread_id"], initial)
    pr = state["pr"]
    body = Path(pr["body_path"]).read_text()
    remote = git.Repo(pr["remote"])
    message = remote.git.log("-1", "--format=%B", pr["head_rev"])
    roots = {str(settings.data_dir.parent), str(settings.data_dir), os.path.expanduser("~"), "/tmp/"}
    for text in (body, message):
        leaked = [r for r in roots if r in text]
        assert not leaked, f"host paths {leaked} in:\n{text}"


def test_a_candidate_refused_by_the_repository_tests_ends_the_deterministic_search(env):
    """The repository's tests run once per refusal: the next base would meet the same tests."""
    settings, repos, initial = env

    class TestsRefuse(ScriptedTarget):
        def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
            from tools.targets.base import Check, VerifyReport

            self.verified.append(cand.id)
            return VerifyReport.from_checks([Check(name="compare", stage="compare", status="passed"),
                                             Check(name="tests:t.py", stage="tests", status="failed", detail="1 failed")],
                                            score=1e-7)

    target = TestsRefuse(set())
    state, _ = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert target.verified == ["alias:a"] and state["outcome"] in ("refused", "needs_llm")
    target2 = TestsRefuse(set())
    from tests.fakes.graph_job import local_job  # a fresh job for the second setting
    s2, r2, init2 = local_job(settings.data_dir.parent / "second", "scripted", {"model_type": "newmodel",
                              "architectures": ["NewModelForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "vocab_size": 1000}, {"registry.py": "REGISTERED = None\n"})
    s2 = s2.model_copy(update={"retry_after_tests": True})
    drive(s2, _deps(s2, r2, target2), init2["thread_id"], init2)
    assert target2.verified == ["alias:a", "alias:b", "alias:c"]


def test_a_candidate_refused_at_reduced_precision_ends_the_deterministic_search(env):
    """Its export matched the reference at f32: another base compresses the same function alike."""
    settings, repos, initial = env

    class PrecisionRefuses(ScriptedTarget):
        def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
            from tools.targets.base import Check, VerifyReport

            self.verified.append(cand.id)
            return VerifyReport.from_checks([Check(name="compare", stage="compare", status="passed"),
                                             Check(name="precision:CPU", stage="precision", status="failed",
                                                   detail="int4: top-1 0.067 < 0.5")], score=1e-7)

    target = PrecisionRefuses(set())
    state, _ = drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    assert target.verified == ["alias:a"] and state["outcome"] in ("refused", "needs_llm")
    assert state["attempts"][-1]["failed_stage"] == "precision"


def test_a_push_that_git_refuses_is_one_named_problem_not_an_internal_error(env):
    import git

    from tools.errors import EnvironmentProblem

    settings, repos, initial = env
    remote = settings.data_dir / "remotes" / "scripted.git"
    remote.parent.mkdir(parents=True)
    git.Repo.init(remote, bare=True)
    # a branch named `onboard` leaves no room for `onboard/scripted/newmodel`: git refuses the push
    (remote / "refs" / "heads" / "onboard").write_text("0" * 40 + "\n")
    with pytest.raises(EnvironmentProblem, match=r"publishing onboard/scripted/newmodel failed in git push"):
        drive(settings, _deps(settings, repos, ScriptedTarget(passing={"a"})), initial["thread_id"], initial)


def test_a_resume_after_the_job_dir_was_deleted_recreates_it(env):
    # seen after a full disk: the job dir was removed by hand, and the resume ended in an internal error
    # ("not a git worktree") instead of re-creating what the checkpoint names, as a resume elsewhere does
    import shutil

    settings, repos, initial = env
    target = ScriptedTarget(passing={"a"}, die_on_verify=1)
    with pytest.raises(Killed):
        drive(settings, _deps(settings, repos, target), initial["thread_id"], initial)
    shutil.rmtree(initial["job_dir"])
    target.die_on_verify = None
    state, how = drive(settings, _deps(settings, repos, target), initial["thread_id"], None)
    assert how == "resumed" and state["outcome"] == "pr"
    assert target.applied == ["alias:a"]  # the change came back from the checkpoint, not from a new edit
    assert (Path(initial["job_dir"]) / "workspace").is_dir()
