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


def test_with_fewer_slots_than_targets_the_longest_last_time_starts_first(world):
    from agent.graph.fanout import FanOut, TargetRow, expected_order, run_all
    from agent.settings import Settings

    tmp, up, cfg = world
    settings = Settings(data_dir=tmp / "data")
    earlier = FanOut(id="all-earlier", model="m", wall_s=60, rows=[
        TargetRow(target="boom", outcome="pr", seconds=5), TargetRow(target="pass", outcome="pr", seconds=10),
        TargetRow(target="fail", outcome="needs_llm", seconds=50),
        TargetRow(target="gone", outcome="error", seconds=0.1)])  # an error row says nothing about its length
    settings.path("fanout").mkdir(parents=True)
    settings.path("fanout", "all-earlier.json").write_text(earlier.model_dump_json())
    # never timed first (it may be the longest), then by the last time, longest first
    assert expected_order(["boom", "pass", "fail", "gone"], settings) == ["gone", "fail", "pass", "boom"]

    started: list[str] = []
    def note(msg: str) -> None:
        key = msg[1:msg.index("]")] if msg.startswith("[") else None
        if key and key not in started:
            started.append(key)
    repos = {k: str(up) for k in ("boom", "pass", "fail", "gone")}
    result = run_all(str(cfg), ["boom", "pass", "fail", "gone"], repos, settings, 1, note)
    assert started == ["gone", "fail", "pass", "boom"]
    assert [r.target for r in result.rows] == ["boom", "pass", "fail", "gone"]  # the table keeps its order


def test_each_target_gets_its_share_of_the_cores_unless_the_user_set_threads(world, monkeypatch):
    import os

    from agent.graph.fanout import run_all
    from agent.settings import Settings

    tmp, up, cfg = world
    seen: list[str | None] = []

    class Counting(ScriptedTarget):
        def verify(self, *args, **kw):
            seen.append(os.environ.get("OMP_NUM_THREADS"))
            return super().verify(*args, **kw)

    monkeypatch.setattr(tools.targets, "REGISTRY", {k: (lambda cache, k=k: Counting({"a"}, key=k, needs_tiny_model=False))
                                                    for k in ("one", "two")})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    settings = Settings(data_dir=tmp / "data")
    run_all(str(cfg), ["one", "two"], {"one": str(up), "two": str(up)}, settings, None, lambda m: None)
    assert seen == ["2", "2"] and "OMP_NUM_THREADS" not in os.environ  # 4 cores, 2 at once; restored after
    seen.clear()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    run_all(str(cfg), ["one", "two"], {"one": str(up), "two": str(up)}, Settings(data_dir=tmp / "d2"), None,
            lambda m: None)
    assert seen == ["3", "3"]


def test_the_longest_target_last_time_gets_the_larger_cpu_share(world, monkeypatch):
    from agent.graph.fanout import CRITICAL_WEIGHT, FanOut, TargetRow, run_all
    from agent.settings import Settings

    tmp, up, cfg = world
    weights: dict[str, float] = {}

    class Recording(ScriptedTarget):
        def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
            weights[self.key] = ctx.cpu_weight
            return super().verify(cand, analysis, ws, ctx, sandbox, run_tests)

    monkeypatch.setattr(tools.targets, "REGISTRY", {k: (lambda cache, k=k: Recording({"a"}, key=k, needs_tiny_model=False))
                                                    for k in ("short", "long")})
    repos = {"short": str(up), "long": str(up)}
    settings = Settings(data_dir=tmp / "data")
    run_all(str(cfg), ["short", "long"], repos, settings, None, lambda m: None)
    assert weights == {"short": 1.0, "long": 1.0}  # no history: even
    again = Settings(data_dir=tmp / "again")  # a finished thread would not verify again
    again.path("fanout").mkdir(parents=True)
    again.path("fanout", "all-earlier.json").write_text(FanOut(id="all-earlier", model="m", wall_s=70, rows=[
        TargetRow(target="short", outcome="pr", seconds=20), TargetRow(target="long", outcome="pr", seconds=65)]
    ).model_dump_json())
    run_all(str(cfg), ["short", "long"], repos, again, None, lambda m: None)
    assert weights == {"short": 1.0, "long": CRITICAL_WEIGHT}
