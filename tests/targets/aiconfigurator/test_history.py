"""aiconfigurator's onboarding commits and the comparison with upstream, on a repository built here."""

from __future__ import annotations

import json
from pathlib import Path

import git

from tools.repo.workspace import commit_all
from tools.targets.aiconfigurator.history import base_problem, compare, history_cases
from tools.targets.aiconfigurator.references import AIConfiguratorReferences
from tools.targets.base import Check

SDK = "aic-core/src/aiconfigurator_core/sdk"
CONFIGS = "aic-core/src/aiconfigurator_core/model_configs"


def common(entries: dict[str, str]) -> str:
    lines = "".join(f'    "{a}": "{f}",\n' for a, f in entries.items())
    return ('ModelFamily = {"LLAMA", "MOE"}\nARCHITECTURE_TO_MODEL_FAMILY = {\n' + lines + "}\n"
            "DefaultHFModels = set()\nRetiredSupportMatrixHFModels = set()\n")


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def history_repo(root: Path) -> tuple[git.Repo, dict]:
    repo = git.Repo.init(root, initial_branch="main")
    entries = {"LlamaForCausalLM": "LLAMA"}
    write(root, f"{SDK}/common.py", common(entries))
    write(root, f"{SDK}/utils.py", "")
    commit_all(repo, "base (#1)")
    entries["FooMoeForCausalLM"] = "MOE"
    write(root, f"{SDK}/common.py", common(entries))
    config = {"architectures": ["FooMoeForCausalLM"], "model_type": "foo_moe", "num_hidden_layers": 2}
    write(root, f"{CONFIGS}/acme--Foo-MoE_config.json", json.dumps(config))
    write(root, "tests/unit/sdk/test_foo.py", "def test_foo():\n    pass\n")
    commit_all(repo, "feat: Foo MoE (#2)")
    entries["BarForCausalLM"] = "LLAMA"  # mapped, but no checkpoint config to onboard from
    write(root, f"{SDK}/common.py", common(entries))
    commit_all(repo, "feat: map Bar (#3)")
    return repo, entries


def test_cases_come_with_the_packaged_config_and_its_checkpoint_id(tmp_path):
    history_repo(tmp_path / "up")
    cases, passed = history_cases(tmp_path / "up", AIConfiguratorReferences(), tmp_path / "cache")
    (case,) = cases
    assert (case.model_type, case.pr, case.facts["architecture"], case.facts["family"], case.facts["hf_id"]) == \
        ("foo_moe", 2, "FooMoeForCausalLM", "MOE", "acme/Foo-MoE")
    raw = json.loads(Path(case.model).read_text())
    assert raw["architectures"] == ["FooMoeForCausalLM"] and raw["_name_or_path"] == "acme/Foo-MoE"
    why = {p.subject: p.reason for p in passed}
    assert why["feat: map Bar (#3)"].startswith("packages no config.json")
    assert why["base (#1)"].startswith("the first commit")


def test_base_problem_names_a_revision_without_the_layout(tmp_path):
    assert base_problem(tmp_path, f"{SDK}/common.py").startswith("the revision predates the layout")
    write(tmp_path, f"{SDK}/common.py", "")
    assert base_problem(tmp_path, f"{SDK}/common.py") is None


def test_compare_family_files_and_upstream_tests_on_ours(tmp_path):
    repo, _ = history_repo(tmp_path / "up")
    cases, _ = history_cases(tmp_path / "up", AIConfiguratorReferences(), tmp_path / "cache")
    case = cases[0]
    up_diff = repo.git.diff(f"{case.sha}^", case.sha)
    upstream = tmp_path / "upstream"
    git.Repo.clone_from(str(tmp_path / "up"), str(upstream)).git.checkout("-q", case.sha)
    ours = tmp_path / "ours"
    ours_repo = git.Repo.clone_from(str(tmp_path / "up"), str(ours))
    ours_repo.git.checkout("-q", f"{case.sha}^")
    write(ours, f"{SDK}/common.py", common({"LlamaForCausalLM": "LLAMA", "FooMoeForCausalLM": "LLAMA"}))
    ours_repo.git.add("-A")
    our_diff = ours_repo.git.diff("--cached", f"{case.sha}^")
    ran = []

    def run_tests(files):
        ran.append((files, (ours / files[0]).exists()))
        return Check(name="repo_tests", status="failed", stage="tests", detail="0 passed, 1 failed")

    got = {a.point: a for a in compare(case, ours, upstream, our_diff, up_diff, run_tests)}
    assert got["family"].agree is False
    assert got["family"].how == "we map FooMoeForCausalLM to LLAMA, upstream to MOE"
    assert got["files"].agree is False and got["files"].how == (
        f"only upstream: {CONFIGS}/acme--Foo-MoE_config.json, tests/unit/sdk/test_foo.py")
    assert ran == [(["tests/unit/sdk/test_foo.py"], True)]
    assert got["upstream_tests"].agree is False and "1 failed" in got["upstream_tests"].how


def test_strip_takes_the_architecture_out_of_head(tmp_path):
    from tools.targets.aiconfigurator.history import strip

    history_repo(tmp_path / "up")
    cases, _ = history_cases(tmp_path / "up", AIConfiguratorReferences(), tmp_path / "cache")
    work = tmp_path / "work"
    git.Repo.clone_from(str(tmp_path / "up"), str(work))
    note = strip(work, cases[0], tmp_path / "up")
    text = (work / SDK / "common.py").read_text()
    assert "FooMoeForCausalLM" not in text and '"BarForCausalLM": "LLAMA"' in text  # the later entry stays
    assert not (work / CONFIGS / "acme--Foo-MoE_config.json").exists()
    assert not (work / "tests/unit/sdk/test_foo.py").exists()
    assert note.startswith("HEAD without FooMoeForCausalLM in the family map")
