"""The Target contract, checked for every registered target and for the test doubles.

A target is its package plus one registry line: these checks fail when a target
lacks one of its folders, a contract attribute, or a PR key the forge can find.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.fakes.moe_target import MoeTarget
from tests.fakes.scripted_target import ScriptedTarget
from tools.forge.local import LocalForge
from tools.targets import REGISTRY, get_target, target_class
from tools.targets.base import BaseTarget, Candidate, Target, package_of
from tests import TESTS

ROOT = TESTS.parent
REQUIRED = ("supported_types", "plan", "candidates", "apply", "verify", "pr_meta")


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_registered_target_has_its_folders_and_attributes(key, tmp_path):
    cls = target_class(key)
    assert issubclass(cls, BaseTarget) and cls.key == key
    pkg = package_of(key)
    for folder in (f"tools/targets/{pkg}", f"sandboxes/targets/{pkg}", f"prompts/targets/{pkg}", f"tests/targets/{pkg}"):
        assert (ROOT / folder).is_dir(), f"{key}: missing {folder}/"
    for f in ("playbook.md.j2", "pr_intro.md.j2"):
        assert (ROOT / "prompts/targets" / pkg / f).is_file(), f"{key}: missing prompts/targets/{pkg}/{f}"
    assert cls.env.job_path.is_file() and cls.env.dockerfile.is_file(), f"{key}: its environment needs a job and a Dockerfile"
    assert cls.env.image.startswith(f"onboarder-{key}:")
    assert cls.done_when and cls.default_repo
    target = get_target(key, tmp_path)
    assert isinstance(target, Target)
    for name in REQUIRED:  # overridden, not BaseTarget's placeholder
        assert getattr(cls, name) is not getattr(BaseTarget, name, None), f"{key} must implement {name}"


@pytest.mark.parametrize("make", [ScriptedTarget, MoeTarget], ids=["scripted", "moe"])
def test_doubles_follow_the_same_contract(make):
    target = make()
    assert isinstance(target, BaseTarget) and isinstance(target, Target) and target.done_when
    for name in REQUIRED:
        params = list(inspect.signature(getattr(target, name)).parameters)
        base = list(inspect.signature(getattr(Target, name)).parameters)[1:]
        assert len(params) >= len(base), f"{type(target).__name__}.{name}{params} != contract {base}"


def test_pr_meta_key_is_what_the_forge_finds(tmp_path):
    """Nightly skips a type whose PR is open by asking the forge for the target's PR key."""
    import git

    target = ScriptedTarget()
    analysis = {"model_type": "newmodel"}
    meta = target.pr_meta(analysis, Candidate(id="alias:a", base="a"), tmp_path)
    ws = tmp_path / "ws"
    repo = git.Repo.init(ws, initial_branch="main")
    (ws / "f").write_text("x\n")
    repo.git.add("-A")
    repo.git.commit("-qm", "base", env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                                        "GIT_COMMITTER_EMAIL": "t@t"})
    (ws / "f").write_text("y\n")
    forge = LocalForge(tmp_path / "data")
    forge.publish(worktree=ws, base_rev=repo.head.commit.hexsha, branch="b", title=meta.title, body="b",
                  target=target.key, model_type=meta.key, thread_id="t", verification={})
    assert forge.find(target.key, meta.key) is not None


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_history_replay_is_supported_or_refused_with_a_reason(key, tmp_path):
    """`onboard bench history` asks every target the same three things; a target that has not said how
    its onboarding commits read refuses by name and reason, never half-supports."""
    from tools.targets.base import HistoryUnsupported

    target = get_target(key, tmp_path)
    overrides = {name for name in ("history_cases", "compare_history")
                 if getattr(type(target), name) is not getattr(BaseTarget, name)}
    if overrides:
        assert overrides == {"history_cases", "compare_history"}  # both, or neither
        return
    with pytest.raises(HistoryUnsupported, match=f"^{key}: bench history is not supported: .+"):
        target.history_cases(tmp_path, tmp_path)
    with pytest.raises(HistoryUnsupported, match=f"^{key}: bench history is not supported"):
        target.compare_history(None, tmp_path, tmp_path, "", "", None, None)
    assert target.history_base_problem(tmp_path, None, tmp_path) is None
