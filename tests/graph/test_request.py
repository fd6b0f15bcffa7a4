"""Job preparation: request → workspace, config, deterministic thread id (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import git
import pytest

from tools.errors import UserError
from agent.graph.request import Request, prepare
from agent.settings import Settings
from tools.repo.workspace import commit_all
from tests import TESTS

FIXTURE = TESTS / "fixtures" / "optimum_intel"


@pytest.fixture
def upstream(tmp_path):
    up = tmp_path / "optimum-intel"
    shutil.copytree(FIXTURE, up)
    commit_all(git.Repo.init(up, initial_branch="main"), "fixture")
    return up


def test_prepare_a_known_type_against_a_local_checkout(tmp_path, upstream, monkeypatch):
    monkeypatch.delenv("ONBOARD_LLM_BASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    job = prepare(Request(model="cwm", target="optimum-intel", repo=str(upstream)), settings)
    again = prepare(Request(model="cwm", target="optimum-intel", repo=str(upstream)), settings)
    assert job.thread_id == again.thread_id and job.thread_id.startswith("optimum-intel-cwm-")
    state = job.initial_state
    assert state["workspace"]["source"] == "git" and Path(state["request"]["config_path"]).is_file()

    monkeypatch.setenv("ONBOARD_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    with_llm = prepare(Request(model="cwm", target="optimum-intel", repo=str(upstream)), settings)
    assert with_llm.thread_id != job.thread_id


def test_prepare_refuses_bad_input_before_writing_anything(tmp_path, upstream):
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(UserError, match="unknown model_type"):
        prepare(Request(model="not_a_model", target="optimum-intel", repo=str(upstream)), settings)
    with pytest.raises(UserError, match="unknown target"):
        prepare(Request(model="cwm", target="nope", repo=str(upstream)), settings)
    assert not (tmp_path / "data" / "jobs").exists()


def test_the_sdist_fallback_thread_id_survives_a_cache_rebuild(tmp_path, monkeypatch):
    """The base commit of a source distribution depends on its content, not on when the cache was built."""
    import io
    import subprocess
    import tarfile
    import time

    import tools.repo.workspace
    from tools.targets.optimum_intel.target import OptimumIntelTarget

    monkeypatch.delenv("ONBOARD_LLM_BASE_URL", raising=False)
    monkeypatch.setattr(OptimumIntelTarget, "default_repo", "http://127.0.0.1:9/optimum-intel.git")

    real_run = subprocess.run

    def fake_pip(cmd, **kw):  # `pip download` of the sdist, offline: a fixed archive; git runs for real
        if "-d" not in cmd:
            return real_run(cmd, **kw)
        dest = Path(cmd[cmd.index("-d") + 1])
        with tarfile.open(dest / "optimum_intel-9.9.tar.gz", "w:gz") as tar:
            for rel in ("optimum-intel-9.9/optimum/exporters/openvino/model_configs.py", "optimum-intel-9.9/setup.py"):
                data = b"# fixed content\n"
                info = tarfile.TarInfo(rel)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(tools.repo.workspace.subprocess, "run", fake_pip)
    settings = Settings(data_dir=tmp_path / "data")
    first = prepare(Request(model="cwm", target="optimum-intel"), settings)
    assert first.initial_state["workspace"]["source"] == "sdist"
    shutil.rmtree(settings.caches / "mirrors")  # the cache is rebuilt (a later commit time)
    time.sleep(1.1)
    again = prepare(Request(model="cwm", target="optimum-intel"), settings)
    assert again.initial_state["workspace"]["base_rev"] == first.initial_state["workspace"]["base_rev"]
    assert again.thread_id == first.thread_id


def test_an_unreachable_repository_of_a_target_without_an_sdist_is_one_clear_error(tmp_path, monkeypatch):
    """aiconfigurator's and NeMo AutoModel's sdists hold no usable source (pypi_name None): with their
    repository out of reach the run must say so, not fail on a distribution lookup of None."""
    from tools.targets.aiconfigurator.target import AIConfiguratorTarget

    monkeypatch.setattr(AIConfiguratorTarget, "default_repo", "http://127.0.0.1:9/aiconfigurator.git")
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(UserError, match="no source-distribution fallback: pass a checkout with --repo"):
        prepare(Request(model="cwm", target="aiconfigurator"), settings)
