"""GraphRunner: prepare once, resume by thread id, publish mode into the state, no local paths.

`prepare` and the target are scripted (the real ones need a framework checkout);
the graph, checkpointer and `drive` are real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agent.graph.deps import Deps
from tools.errors import UserError
from agent.service.graph_runner import GraphRunner
from agent.service.queue import JobQueue
from agent.settings import Settings
from tests.fakes.service_env import ScriptedGraphRunner, fake_tiny, scripted_target
from tools.forge.local import LocalForge


@pytest.fixture
def runner(tmp_path, monkeypatch):
    import agent.graph.request
    import agent.graph.run
    import tools.tiny.model

    monkeypatch.setattr(tools.tiny.model, "build_tiny", fake_tiny(tmp_path))
    settings = Settings(data_dir=tmp_path / "data")
    scripted = ScriptedGraphRunner(settings, LocalForge(settings.data_dir), tmp_path)
    prepared = []

    def prepare(request, settings, progress):
        job = SimpleNamespace(request={"model": request.model, "target": request.target}, id="x")
        initial = scripted._initial(job)
        prepared.append(request.model)
        return SimpleNamespace(thread_id=initial["thread_id"], initial_state=initial)

    def make_deps(settings, target, progress, forge=None):
        return Deps(settings=settings, target=scripted_target(), forge=forge or LocalForge(settings.data_dir),
                    repos=scripted.repos, sandbox_factory=lambda: SimpleNamespace(name="none", warning=None))

    monkeypatch.setattr(agent.graph.request, "prepare", prepare)
    monkeypatch.setattr(agent.graph.run, "make_deps", make_deps)
    queue = JobQueue(tmp_path / "q.sqlite")
    return GraphRunner(settings), queue, prepared


def job(queue, model, publish):
    j, _ = queue.enqueue(trigger_key=f"k-{model}", subject=model, source="chat", reply={},
                         request={"model": model, "target": "optimum-intel", "publish": publish})
    return j


def test_approval_interrupt_then_resume_without_preparing_again(runner):
    graph, queue, prepared = runner
    stages = []
    j = job(queue, "newmodel", "approval")
    first = graph.run(j, None, stages.append, lambda tid: queue.update(j.id, thread_id=tid))
    assert first.status == "awaiting_approval" and "verify" in stages and "publish" not in stages
    second = graph.run(queue.get(j.id), {"approved": True, "by": "ann"}, stages.append, lambda tid: None)
    assert second.status == "done" and second.outcome == "pr" and second.pr_url.startswith("file://")
    assert prepared == ["newmodel"]  # the resume went by thread id


def test_auto_publishes_and_dry_run_does_not(runner):
    graph, queue, _ = runner
    auto = graph.run(job(queue, "modela", "auto"), None, lambda s: None, lambda t: None)
    dry = graph.run(job(queue, "modelb", "dry_run"), None, lambda s: None, lambda t: None)
    assert auto.outcome == "pr" and dry.outcome == "dry_run" and dry.pr_url == ""


def test_model_naming_a_local_path_is_refused(runner, tmp_path, monkeypatch):
    graph, queue, prepared = runner
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secrets").mkdir()
    with pytest.raises(UserError):
        graph.run(job(queue, "secrets", "auto"), None, lambda s: None, lambda t: None)
    assert prepared == []
