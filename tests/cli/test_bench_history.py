"""`onboard bench history` end to end: the real graph and checkpointer on a repository built here,
a scripted target that says which commits onboarded a model and how to compare."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest
from typer.testing import CliRunner

import tools.targets
from agent.cli.main import app
from tests.fakes.scripted_target import ScriptedTarget
from tools.hf.config import LoadedConfig
from tools.repo.workspace import commit_all
from tools.targets.base import Agreement, HistoryCase, PassedOver

RAW = {"model_type": "newmodel", "architectures": ["NewModelForCausalLM"], "hidden_size": 64,
       "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}


class HistoryTarget(ScriptedTarget):
    """Onboarding commits are those whose subject starts with "Add "; the parent is "too old" on request."""

    def __init__(self, parent_problem: str | None = None):
        super().__init__(passing={"llama"}, bases=("llama",))
        self.parent_problem = parent_problem
        self.seen: list[dict] = []

    def history_cases(self, mirror, cache_dir):
        repo = git.Repo(mirror)
        cases, passed = [], []
        for c in repo.iter_commits("HEAD", first_parent=True):
            if c.summary.startswith("Add "):
                mt = c.summary.split()[1]
                cases.append(HistoryCase(model=mt, model_type=mt, sha=c.hexsha, subject=c.summary,
                                         timestamp=c.committed_date))
            elif c.summary.startswith("Image "):
                passed.append(PassedOver(sha=c.hexsha, subject=c.summary, model_types=["img"], reason="no text"))
        return cases, passed

    def history_base_problem(self, workspace, sandbox, work_dir):
        return self.parent_problem

    def compare_history(self, case, ours, upstream, our_diff, upstream_diff, ctx, sandbox):
        self.seen.append({"ours": (ours / "registry.py").read_text(), "upstream": (upstream / "registry.py").read_text(),
                          "base_has_test": (ours / "tests" / f"test_{case.model_type}.py").exists()})
        ours_files = {ln[6:] for ln in our_diff.splitlines() if ln.startswith("+++ b/")}
        up_files = {ln[6:] for ln in upstream_diff.splitlines() if ln.startswith("+++ b/")}
        return [Agreement(point="family", agree=True, ours="llama", upstream="llama"),
                Agreement(point="files", agree=ours_files == up_files, ours=str(len(ours_files)),
                          upstream=str(len(up_files)), how="; ".join(sorted(up_files ^ ours_files)))]


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    import tools.hf.config
    import tools.tiny.model
    from types import SimpleNamespace

    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "registry.py").write_text("REGISTERED = None\n")
    commit_all(repo, "base")
    (up / "registry.py").write_text("REGISTERED = 'newmodel'  # via llama\n")
    (up / "tests").mkdir()
    (up / "tests" / "test_newmodel.py").write_text("def test_it():\n    pass\n")
    commit_all(repo, "Add newmodel (#7)")
    (up / "img.py").write_text("IMG = 1\n")
    commit_all(repo, "Image model (#8)")
    monkeypatch.setattr(tools.hf.config, "load_config",
                        lambda model, **kw: LoadedConfig(raw={**RAW, "model_type": model}, source=model,
                                                         origin="model_type"))
    monkeypatch.setattr(tools.tiny.model, "build_tiny", lambda raw, cache, **kw: SimpleNamespace(
        path=tmp_path / "tiny", num_params=10, config=raw, cached=True, build_seconds=0.0))
    return up


def use(monkeypatch, target):
    monkeypatch.setitem(tools.targets.REGISTRY, "scripted", lambda cache: target)


def bench(up: Path, data: Path, *extra: str):
    return CliRunner().invoke(app, ["bench", "history", "--target", "scripted", "--repo", str(up), "--last", "5",
                                    "--jobs", "1", "--data-dir", str(data), *extra], env={"COLUMNS": "200"})


def test_parent_mode_onboards_compares_saves_and_resumes(upstream, tmp_path, monkeypatch):
    target = HistoryTarget()
    use(monkeypatch, target)
    result = bench(upstream, tmp_path / "data", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (row,) = data["rows"]
    assert row["case"]["model_type"] == "newmodel" and row["mode"] == "parent" and row["outcome"] == "dry_run"
    assert row["candidate"] == "alias:llama"
    # Upstream also added tests/test_newmodel.py: the files point says so.
    files = next(a for a in row["agreements"] if a["point"] == "files")
    assert files["agree"] is False and files["how"] == "tests/test_newmodel.py"
    assert data["agreement"]["family"] == {"agree": 1, "judged": 1, "rate": 1.0}
    assert data["agreement"]["all_points"]["agree"] == 0
    assert [p["subject"] for p in data["passed_over"]] == ["Image model (#8)"]
    # Ours was compared on the parent with our change; upstream's tree is the commit itself.
    assert target.seen == [{"ours": "REGISTERED = 'newmodel'  # via llama\n",
                            "upstream": "REGISTERED = 'newmodel'  # via llama\n", "base_has_test": False}]
    root = tmp_path / "data" / "bench" / "history" / "scripted"
    (bench_dir,) = list(root.iterdir())
    page = (bench_dir / "report.html").read_text()
    assert "<svg" in page and "<script" not in page and "newmodel" in page
    assert json.loads((bench_dir / "report.json").read_text())["rows"][0]["outcome"] == "dry_run"
    assert not (tmp_path / "data" / "prs").exists()  # a dry run: nothing published

    again = bench(upstream, tmp_path / "data")  # resumed: the finished row is reused, nothing re-runs
    assert again.exit_code == 0, again.output
    assert len(target.verified) == 1 and len(target.seen) == 1
    assert "finished earlier with the same inputs" in again.output
    assert "newmodel" in again.output and "differs: newmodel files: tests/test_newmodel.py" in again.output


def test_revert_mode_when_the_parent_does_not_work(upstream, tmp_path, monkeypatch):
    target = HistoryTarget(parent_problem="does not import with transformers 5")
    use(monkeypatch, target)
    result = bench(upstream, tmp_path / "data", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["mode"] == "revert" and "does not import" in row["mode_note"] and row["outcome"] == "dry_run"
    # The base was HEAD without the commit: its test file is gone, the later commit (img.py) is kept.
    assert target.seen[0]["base_has_test"] is False
    assert (upstream / "tests" / "test_newmodel.py").exists()  # the source checkout is never written


def test_target_without_history_support_is_one_line_error(upstream, tmp_path, monkeypatch):
    use(monkeypatch, ScriptedTarget())
    result = bench(upstream, tmp_path / "data")
    assert result.exit_code == 2
    assert "bench history is not supported" in result.output and "Traceback" not in result.output


def test_bad_repo_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "history", "--repo", str(tmp_path / "nope"),
                                      "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_new_builder_onboards_afresh_and_a_crashed_row_runs_again(upstream, tmp_path, monkeypatch):
    import agent.nightly.store

    target = HistoryTarget()
    use(monkeypatch, target)
    first = json.loads(bench(upstream, tmp_path / "data", "--json").stdout)["rows"][0]
    monkeypatch.setattr(agent.nightly.store, "builder_version", lambda: "changed-builder")
    second = json.loads(bench(upstream, tmp_path / "data", "--json").stdout)["rows"][0]
    # Not a replay of the finished thread: the onboarding ran again, under its own thread.
    assert len(target.verified) == 2 and second["thread_id"] != first["thread_id"]
    assert second["thread_id"].rsplit("-", 1)[1].startswith("b")

    from agent.bench.store import CaseRow, RowStore

    root = next((tmp_path / "data" / "bench" / "history" / "scripted").iterdir())
    crashed = CaseRow.model_validate({**second, "outcome": "error", "agreements": []})
    RowStore(root).put(crashed)
    third = json.loads(bench(upstream, tmp_path / "data", "--json").stdout)["rows"][0]
    assert third["outcome"] == "dry_run" and len(target.seen) == 3  # compared again, the thread replayed


class StrippingTarget(HistoryTarget):
    def history_strip(self, workspace, case, mirror):
        (workspace / "registry.py").write_text("REGISTERED = None\n")
        (workspace / "tests" / f"test_{case.model_type}.py").unlink()
        return f"registration and tests of {case.model_type} taken out"


def test_head_without_the_model_when_the_target_can_take_it_out(upstream, tmp_path, monkeypatch):
    target = StrippingTarget(parent_problem="does not import with transformers 5")
    use(monkeypatch, target)
    result = bench(upstream, tmp_path / "data", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["mode"] == "head_without" and row["outcome"] == "dry_run"
    assert "registration and tests of newmodel taken out" in row["mode_note"]
    # Compared with HEAD (upstream's change and everything after it); the base had neither registry nor test.
    assert target.seen[0]["base_has_test"] is False
    assert target.seen[0]["upstream"] == "REGISTERED = 'newmodel'  # via llama\n"


def test_no_run_reports_the_stored_rows_and_replays_nothing(upstream, tmp_path, monkeypatch):
    target = HistoryTarget()
    use(monkeypatch, target)
    empty = bench(upstream, tmp_path / "data", "--no-run", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["rows"] == [] and target.verified == []
    bench(upstream, tmp_path / "data")
    stored = json.loads(bench(upstream, tmp_path / "data", "--no-run", "--json").stdout)
    assert [r["outcome"] for r in stored["rows"]] == ["dry_run"] and len(target.verified) == 1
