"""One type's job in-process: the real graph and checkpointer, a scripted target, no exports."""

from __future__ import annotations

import git
import pytest

from tests.fakes.scripted_target import ScriptedTarget

import tools.targets
from agent.nightly.job import JobSpec, onboard
from agent.nightly.store import Inputs
from agent.settings import Settings
from tools.forge.local import LocalForge
from tools.hf.config import LoadedConfig
from tools.repo.workspace import commit_all
from tools.targets.base import Candidate, Check, Plan, VerifyReport

RAW = {"model_type": "newmodel", "architectures": ["NewModelForCausalLM"], "hidden_size": 64,
       "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}


def Scripted(passing: bool) -> ScriptedTarget:
    """The shared scripted target with one candidate that passes (distance 1e-7) or fails (0.5)."""
    return ScriptedTarget(passing={"llama"} if passing else set(), bases=("llama",))


@pytest.fixture
def spec(tmp_path, monkeypatch):
    import tools.hf.config
    import tools.tiny.model
    from types import SimpleNamespace

    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "registry.py").write_text("REGISTERED = None\n")
    commit_all(repo, "base")
    monkeypatch.setattr(tools.hf.config, "load_config",
                        lambda model, **kw: LoadedConfig(raw=dict(RAW), source=model, origin="model_type"))
    monkeypatch.setattr(tools.tiny.model, "build_tiny", lambda raw, cache, **kw: SimpleNamespace(
        path=tmp_path / "tiny", num_params=10, config=raw, cached=True, build_seconds=0.0))
    settings = Settings(data_dir=tmp_path / "data", sandbox="local")
    inputs = Inputs(transformers="5.5.4", target_rev="r", builder="b1")
    return JobSpec(model_type="newmodel", target="scripted", repo=str(up), settings=settings, inputs=inputs,
                   out_dir=tmp_path / "out")


def use(monkeypatch, target):
    monkeypatch.setitem(tools.targets.REGISTRY, "scripted", lambda cache: target)


def test_passing_type_is_pr_once_and_a_new_builder_runs_afresh(spec, monkeypatch):
    target = Scripted(passing=True)
    use(monkeypatch, target)
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "pr" and row.base == "llama" and row.thread_id.rsplit("-", 1)[1].startswith("b")
    again = onboard(spec)  # same builder: the finished thread is reported, nothing re-runs
    assert again.status == "pr" and again.thread_id == row.thread_id and len(target.verified) == 1
    newer = onboard(spec.model_copy(update={"inputs": spec.inputs.model_copy(update={"builder": "b2"})}))
    assert newer.thread_id != row.thread_id and len(target.verified) == 2
    assert len(LocalForge(spec.settings.data_dir).records()) == 1  # upserted, never a second record


def test_failing_s1_type_is_compare_failed(spec, monkeypatch):
    use(monkeypatch, Scripted(passing=False))
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "compare_failed" and row.score == 0.5


def test_crash_in_tiny_is_tiny_failed_named_by_the_checkpoint(spec, monkeypatch):
    import tools.tiny.model

    def boom(raw, cache, **kw):
        raise RuntimeError("cannot build: rope scaling")  # a bug, not a refusal: the node crashes
    monkeypatch.setattr(tools.tiny.model, "build_tiny", boom)
    use(monkeypatch, Scripted(passing=True))
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "tiny_failed" and row.detail.startswith("tiny: RuntimeError: cannot build")


def test_refused_tiny_model_is_tiny_failed_with_its_reason(spec, monkeypatch):
    import tools.tiny.model

    def refuse(raw, cache, **kw):
        raise tools.tiny.model.TinyModelError("tiny newmodel failed validation: reload failed")
    monkeypatch.setattr(tools.tiny.model, "build_tiny", refuse)
    use(monkeypatch, Scripted(passing=True))
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "tiny_failed" and "reload failed" in row.detail and row.pr_url is None


def test_bad_model_is_tiny_failed_at_prepare(spec, monkeypatch):
    import tools.hf.config

    def bad(model, **kw):
        raise tools.hf.config.ConfigError("transformers cannot build a default newmodel config")
    monkeypatch.setattr(tools.hf.config, "load_config", bad)
    use(monkeypatch, Scripted(passing=True))
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "tiny_failed" and row.detail.startswith("prepare: transformers cannot build")
