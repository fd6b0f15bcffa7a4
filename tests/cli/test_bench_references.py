"""`onboard bench references` on a repository built here (numbers are printed, never asserted)."""

from __future__ import annotations

import json

import git
from typer.testing import CliRunner

from agent.cli.main import app
from tools.repo.workspace import commit_all

CONFIGS = "optimum/exporters/openvino/model_configs.py"
REG = '@register_in_tasks_manager("{0}", *["text-generation"], library_name="transformers")\nclass {0}C(X):\n    pass\n'


class _Loaded:
    def __init__(self, model):
        self.raw = {"model_type": model}


class _Analysis:
    def __init__(self, raw):
        self.raw = raw

    def model_dump(self, mode="json"):
        t = self.raw["model_type"]
        return {"model_type": t, "kind": "moe" if "moe" in t else "dense", "lineage": ["llama"]}


def test_bench_references_reports_history_timings_and_choices(tmp_path, monkeypatch):
    import tools.hf.config
    from tools.targets.optimum_intel import references as optimum_intel_refs

    monkeypatch.setattr(tools.hf.config, "load_config", lambda model, **kw: _Loaded(model))
    monkeypatch.setattr(tools.hf.config, "analyze", _Analysis)
    monkeypatch.setattr(optimum_intel_refs, "kind_of", lambda t: "moe" if "moe" in t else "dense")
    monkeypatch.setattr(optimum_intel_refs, "base_of", lambda t: ("llama",))
    root = tmp_path / "up"
    repo = git.Repo.init(root, initial_branch="main")
    (root / CONFIGS).parent.mkdir(parents=True)
    text = ""
    for pr, name in enumerate(["llama", "densea", "moeb"], start=1):
        text += REG.format(name)
        (root / CONFIGS).write_text(text)
        if name == "moeb":
            (root / "optimum/exporters/openvino/model_patcher.py").write_text("class P:\n    pass\n")
        commit_all(repo, f"Add {name} (#{pr})")
    (root / "README.md").write_text("unrelated\n")
    commit_all(repo, "Docs (#4)")

    result = CliRunner().invoke(app, ["bench", "references", "newdense", "newmoe", "--repo", str(root),
                                      "--runs", "2", "--data-dir", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert (got["commits"], got["registry_commits"], got["additions"]) == (4, 3, 3)
    assert got["cold_select_s"] >= 0 and all(r["warm_median_s"] >= 0 for r in got["rows"])
    dense, moe = got["rows"]
    assert dense["refs"][0]["ref"] == "#2"
    assert moe["refs"][0]["ref"] == "#3" and moe["refs"][0]["patcher"]
    assert not (tmp_path / "data" / "cache" / "mirrors").exists()  # the bench's clone was scratch

    table = CliRunner().invoke(app, ["bench", "references", "newmoe", "--repo", str(root), "--runs", "1",
                                     "--data-dir", str(tmp_path / "data")], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "selection, warm (newmoe" in table.output and "Add moeb (#3)" in table.output


def test_bench_references_unreachable_repository_is_a_user_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "references", "--repo", "http://127.0.0.1:9/x.git",
                                      "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cannot reach http://127.0.0.1:9/x.git" in result.output
