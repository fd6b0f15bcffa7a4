"""`onboard references` when things go wrong: unreachable repository, unknown PR, corrupt mirror.

The repositories are built here; the model analysis is replaced by a fixed one so each
case costs git time only.
"""

from __future__ import annotations

import subprocess

import git
import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from tools.repo.workspace import RepoManager, _slug, commit_all

CONFIGS = "optimum/exporters/openvino/model_configs.py"
REG = '@register_in_tasks_manager("{0}", *["text-generation"], library_name="transformers")\nclass {1}(X):\n    pass\n'


class _Loaded:
    raw = {"model_type": "newmoe"}


class _Analysis:
    def model_dump(self, mode="json"):
        return {"model_type": "newmoe", "kind": "moe", "lineage": ["llama"]}


@pytest.fixture
def upstream(tmp_path):
    root = tmp_path / "up"
    repo = git.Repo.init(root, initial_branch="main")
    (root / CONFIGS).parent.mkdir(parents=True)
    text = REG.format("llama", "Llama")
    (root / CONFIGS).write_text(text)
    commit_all(repo, "Initial")
    for pr, name in ((10, "densea"), (11, "moeb")):
        text += REG.format(name, name.title())
        (root / CONFIGS).write_text(text)
        if name == "moeb":
            (root / "optimum/exporters/openvino/model_patcher.py").write_text("class MoebPatcher:\n    pass\n")
        commit_all(repo, f"Add {name} (#{pr})")
    return root


@pytest.fixture(autouse=True)
def _cheap_analysis(monkeypatch):
    import tools.hf.config
    from tools.targets.optimum_intel import references as optimum_intel_refs

    monkeypatch.setattr(tools.hf.config, "load_config", lambda model, **kw: _Loaded())
    monkeypatch.setattr(tools.hf.config, "analyze", lambda raw: _Analysis())
    monkeypatch.setattr(optimum_intel_refs, "kind_of", lambda t: "moe" if "moe" in t else "dense")
    monkeypatch.setattr(optimum_intel_refs, "base_of", lambda t: ("llama",))


def _run(tmp_path, *args):
    return CliRunner().invoke(app, ["references", "newmoe", "--target", "optimum-intel",
                                    "--data-dir", str(tmp_path / "data"), *args], env={"COLUMNS": "300"})


def _one_error_line(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("url", ["file:///nonexistent/repo.git", "http://127.0.0.1:9/x.git"])
def test_unreachable_repository_is_one_line_and_exit_2(tmp_path, url):
    result = _run(tmp_path, "--repo", url)
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert f"cannot reach {url}" in line and "git history" in line


def test_missing_pull_request_names_the_number(tmp_path, upstream):
    result = _run(tmp_path, "--repo", str(upstream), "--reference", "99999")
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "pull request #99999 does not exist" in line and str(upstream) in line
    # a merged PR is found by its number in the subject, without any refs/pull/ ref
    ok = _run(tmp_path, "--repo", str(upstream), "--reference", "10", "--json")
    assert ok.exit_code == 0, ok.output
    assert '"ref": "#10"' in ok.output and "Add densea (#10)" in ok.output


def _mirror_path(tmp_path, upstream):
    return tmp_path / "data" / "cache" / "mirrors" / f"{_slug(str(upstream))}.git"


def _overwrite(path, data: bytes):
    path.unlink()  # object files are read-only; a new file also never touches a shared inode
    path.write_bytes(data)


def test_truncated_pack_is_detected_and_recloned(tmp_path, upstream):
    assert _run(tmp_path, "--repo", str(upstream)).exit_code == 0
    mirror = _mirror_path(tmp_path, upstream)
    subprocess.run(["git", "-C", str(mirror), "repack", "-adq"], check=True)
    (pack,) = mirror.glob("objects/pack/*.pack")
    _overwrite(pack, pack.read_bytes()[: pack.stat().st_size // 2])
    assert not RepoManager._healthy(mirror)
    result = _run(tmp_path, "--repo", str(upstream))
    assert result.exit_code == 0, result.output
    assert "was corrupt" in result.output and "re-cloned from" in result.output
    assert "#11" in result.output  # and the selection still works on the fresh clone
    assert RepoManager._healthy(mirror)


def test_corrupt_object_deep_in_history_is_recloned_on_use(tmp_path, upstream):
    assert _run(tmp_path, "--repo", str(upstream)).exit_code == 0
    mirror = _mirror_path(tmp_path, upstream)
    first = git.Repo(mirror).git.rev_list("--max-parents=0", "HEAD")
    # the cheap health check reads HEAD only; this object is met while scanning the history
    _overwrite(mirror / "objects" / first[:2] / first[2:], b"garbage")
    for cached in (tmp_path / "data" / "cache" / "references").glob("*.json"):
        cached.unlink()
    assert RepoManager._healthy(mirror)
    result = _run(tmp_path, "--repo", str(upstream))
    assert result.exit_code == 0, result.output
    assert "was corrupt" in result.output and "re-cloned from" in result.output
    assert "#11" in result.output


def test_node_skips_a_source_distribution_workspace(tmp_path):
    from types import SimpleNamespace

    from agent.graph.nodes.references import references

    said = []
    deps = SimpleNamespace(target=SimpleNamespace(references=lambda: object()), progress=said.append)
    state = {"workspace": {"source": "sdist"}, "request": {"mirror": str(tmp_path)}, "analysis": {}}
    assert references(state, deps)["references"] == []
    assert "without git history" in said[0]
