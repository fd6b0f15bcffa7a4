"""One type's job in-process: the real graph and checkpointer, a scripted target, no exports."""

from __future__ import annotations

import git
import pytest

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


class Scripted:
    name, default_repo, pypi_name = "scripted", "", "scripted"

    def __init__(self, passing: bool):
        self.passing, self.verified = passing, 0

    def supported_types(self, ws):
        return {"llama"}

    def plan(self, analysis, ws):
        return Plan(situation="S1", files=["registry.py"])

    def candidates(self, analysis, ws, limit):
        return [Candidate(id="alias:llama", base="llama", params={"base_class": "L"})]

    def apply(self, cand, analysis, ws, ctx, facts=None):
        (ws / "registry.py").write_text(f"REGISTERED = {analysis['model_type']!r}\n")
        return ["registry.py"], []

    def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
        self.verified += 1
        diff = 1e-7 if self.passing else 0.4
        checks = [Check(name="logits_parity", status="passed" if self.passing else "failed",
                        metrics={"max_abs_diff": diff})]
        return VerifyReport(passed=self.passing, checks=checks,
                            first_failure="" if self.passing else "logits_parity: 0.4")

    def display_name(self, t):
        return t

    def pr_title(self, analysis, cand):
        return f"Add {analysis['model_type']}"

    def min_transformers_version(self, t):
        return "5.0.0", "scripted"


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
    monkeypatch.setitem(tools.targets.FACTORIES, "scripted", lambda cache: target)


def test_passing_type_is_pr_once_and_a_new_builder_runs_afresh(spec, monkeypatch):
    target = Scripted(passing=True)
    use(monkeypatch, target)
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "pr" and row.base == "llama" and row.thread_id.rsplit("-", 1)[1].startswith("b")
    again = onboard(spec)  # same builder: the finished thread is reported, nothing re-runs
    assert again.status == "pr" and again.thread_id == row.thread_id and target.verified == 1
    newer = onboard(spec.model_copy(update={"inputs": spec.inputs.model_copy(update={"builder": "b2"})}))
    assert newer.thread_id != row.thread_id and target.verified == 2
    assert len(LocalForge(spec.settings.data_dir).records()) == 1  # upserted, never a second record


def test_failing_s1_type_is_parity_failed(spec, monkeypatch):
    use(monkeypatch, Scripted(passing=False))
    spec.out_dir.mkdir()
    row = onboard(spec)
    assert row.status == "parity_failed" and row.max_abs_diff == 0.4


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
