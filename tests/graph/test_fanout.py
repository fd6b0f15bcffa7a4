"""One model, every target: rows for each, a failing target does not hold up the others, `show` reads it back."""

from __future__ import annotations

import json

import git
import pytest
from typer.testing import CliRunner

import tools.targets
from tests.fakes.scripted_target import ScriptedTarget
from tools.repo.workspace import commit_all

CONFIG = {"model_type": "newmodel", "architectures": ["NewModelForCausalLM"], "hidden_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}


@pytest.fixture
def world(tmp_path, monkeypatch):
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "registry.py").write_text("REGISTERED = None\n")
    commit_all(repo, "base")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    class Boom(ScriptedTarget):
        def plan(self, analysis, ws):
            raise RuntimeError("a bug in this target")

    # Four targets: one passes, one fails every candidate, one cannot even start (its repository is gone),
    # one crashes: each ends its own row.
    registry = {"boom": lambda cache: Boom({"a"}, key="boom", needs_tiny_model=False),"pass": lambda cache: ScriptedTarget({"a"}, key="pass", needs_tiny_model=False),
                "fail": lambda cache: ScriptedTarget(set(), key="fail", needs_tiny_model=False),
                "gone": lambda cache: ScriptedTarget({"a"}, key="gone", needs_tiny_model=False)}
    monkeypatch.setattr(tools.targets, "REGISTRY", registry)
    return tmp_path, up, cfg


def test_every_target_gets_a_row_and_show_reads_them_back(world):
    from agent.cli.main import app

    tmp, up, cfg = world
    runner = CliRunner()
    args = ["run", str(cfg), "--target", "all", "--data-dir", str(tmp / "data"), "--json", "--jobs", "2",
            "--repo", f"pass={up}", "--repo", f"fail={up}", "--repo", f"gone={tmp / 'missing'}",
            "--repo", f"boom={up}"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # not every target ended with a PR
    result = json.loads(res.stdout[res.stdout.index("{"):])
    rows = {r["target"]: r for r in result["rows"]}
    assert rows["pass"]["outcome"] == "pr" and rows["pass"]["pr"] and rows["pass"]["changed"] == ["registry.py"]
    assert rows["fail"]["outcome"] == "needs_llm" and "no candidate passed" in rows["fail"]["reason"]
    assert rows["gone"]["outcome"] == "error" and "missing" in rows["gone"]["reason"]
    assert rows["boom"]["outcome"] == "error" and "a bug in this target" in rows["boom"]["reason"]
    shown = runner.invoke(app, ["show", result["id"], "--data-dir", str(tmp / "data"), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["rows"] == result["rows"]


def test_repo_pairs_must_name_a_target(world):
    from agent.cli.main import app

    tmp, up, cfg = world
    res = CliRunner().invoke(app, ["run", str(cfg), "--target", "all", "--data-dir", str(tmp / "data"),
                                   "--repo", str(up)])
    assert res.exit_code == 2 and "KEY=URL_OR_PATH" in res.output
