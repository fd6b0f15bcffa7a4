"""References from the target's own history: a new family-map line is an onboarding, a file move is not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.targets.aiconfigurator.helpers import COMMON, FIXTURE, UTILS
from tools.repo.references import find_additions
from tools.targets.aiconfigurator import Target
from tools.targets.aiconfigurator.references import AIConfiguratorReferences, kind_of

OLD_COMMON = "src/aiconfigurator/sdk/common.py"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args], check=True,
                   capture_output=True)


def history(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / OLD_COMMON).parent.mkdir(parents=True)
    shutil.copy(FIXTURE / COMMON, repo / OLD_COMMON)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    (repo / COMMON).parent.mkdir(parents=True)
    git(repo, "mv", OLD_COMMON, COMMON)  # the core/application split: every line moves, nothing is new
    # ... and the moved file is rewritten enough that git sees a delete and an add, not a rename.
    moved = repo / COMMON
    moved.write_text("".join(f"# header line {i}\n" for i in range(200)) + moved.read_text())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "build: restructure (#1322)")
    text = (repo / COMMON).read_text().replace('    "Gemma4ForConditionalGeneration": "GEMMA4MIX",\n',
                                              '    "Gemma4ForConditionalGeneration": "GEMMA4MIX",\n'
                                              '    "Qwen3NextForCausalLM": "QWEN35",\n')
    (repo / COMMON).write_text(text)
    shutil.copy(FIXTURE / UTILS, repo / UTILS)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat: Qwen3-Next support (#12)")
    return repo


def test_only_the_new_architecture_is_an_addition(tmp_path):
    profile = AIConfiguratorReferences()
    additions = find_additions(history(tmp_path), profile, tmp_path / "cache")
    # The first commit registers every family (as upstream's did); the move registers nothing new.
    assert [a.subject for a in additions] == ["feat: Qwen3-Next support (#12)", "base"]
    assert (additions[0].pr, additions[0].model_types) == (12, ["Qwen3NextForCausalLM:QWEN35"])
    assert "MiMoForCausalLM:LLAMA" in additions[1].model_types
    assert {"registration", "parser"} <= set(additions[0].kinds)
    assert kind_of("Qwen3NextForCausalLM:QWEN35") == "hybrid" and kind_of("X:LLAMA") == "dense"


def test_the_target_offers_its_reference_profile(tmp_path):
    assert isinstance(Target(tmp_path).references(), AIConfiguratorReferences)
