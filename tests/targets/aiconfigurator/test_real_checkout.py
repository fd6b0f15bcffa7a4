"""The acceptance runs on a real aiconfigurator checkout, in the target's own environment (integration).

ONBOARD_AIC_CHECKOUT names a clone of ai-dynamo/aiconfigurator with its history (the Step-3.7 test reads
the revision before that family). Each test works on an exported copy, never on the clone. The first run
builds the environment's venv from requirements.lock (about a minute); each verify takes 20-40 s.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.targets.aiconfigurator.helpers import COMMON, analysis_of, remove_line
from tools.targets.aiconfigurator import Target
from tools.targets.aiconfigurator import registry as regmod
from tools.targets.aiconfigurator.target import ENV
from tools.targets.base import JobContext

CHECKOUT = os.environ.get("ONBOARD_AIC_CHECKOUT", "")
STEP_FAMILY_COMMIT = "848f5e1141b352b456ccb5676dc9087e2034a793"  # feat(models): add StepFun Step-3.7-Flash
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (CHECKOUT and (Path(CHECKOUT) / ".git").exists()),
                                 reason="set ONBOARD_AIC_CHECKOUT to a clone of ai-dynamo/aiconfigurator")]


def export(rev: str, dest: Path, *paths: str) -> Path:
    """The tree at `rev` as plain files (the job mounts it read-only; no git metadata needed)."""
    dest.mkdir(parents=True)
    archive = dest.parent / f"{dest.name}.tar"
    subprocess.run(["git", "-C", CHECKOUT, "archive", "-o", str(archive), rev, *paths], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return dest


@pytest.fixture(scope="module")
def sandbox():
    from sandboxes.factory import make_sandbox

    return make_sandbox("local", ENV)


def run(tmp_path, ws, cfg, sandbox, family=None, hf_id=None, run_tests=True):
    t = Target(tmp_path / "cache", hf_id=hf_id)
    a = analysis_of(cfg)
    cand = t.candidates(a, ws, 3)[0]
    if family:
        cand = cand.model_copy(update={"params": {**cand.params, "family": family}})
    ctx = JobContext(model_type=a["model_type"], work_dir=tmp_path / "work", timeout_s=600, tests_timeout_s=1500)
    applied = t.apply(cand, a, ws, ctx)
    report = t.verify(cand, a, ws, ctx, sandbox, run_tests)
    return t.plan(a, ws), applied, report


def test_qwen3_next_is_s2_and_verifies_end_to_end(tmp_path, sandbox):
    ws = export("HEAD", tmp_path / "ws")
    plan = Target(tmp_path / "c").plan(analysis_of("Qwen--Qwen3-Next-80B-A3B-Instruct_config.json"), ws)
    assert plan.situation == "S2"
    _, applied, report = run(tmp_path, ws, "Qwen--Qwen3-Next-80B-A3B-Instruct_config.json", sandbox,
                             hf_id="Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert report.passed, report.first_failure
    est = report.check("estimate")
    assert est.metrics["ttft_ms"] > 0 and est.metrics["tpot_ms"] > 0
    assert report.check("repo_tests").metrics["failures"] == 0


def test_registration_only_model_removed_then_re_onboarded(tmp_path, sandbox):
    ws = export("HEAD", tmp_path / "ws")
    remove_line(ws, COMMON, '"MiMoForCausalLM": "LLAMA"')
    _, applied, report = run(tmp_path, ws, "XiaomiMiMo--MiMo-7B-Base_config.json", sandbox,
                             hf_id="XiaomiMiMo/MiMo-7B-Base")
    assert regmod.read(ws).arch_to_family["MiMoForCausalLM"] == "LLAMA"  # the family upstream chose
    assert report.passed, report.first_failure


def test_registration_only_removal_is_seen_by_the_repository_tests(tmp_path, sandbox):
    """The same removal without the onboarding: the repository's own tests fail, so the pass above means
    the re-registration fixed them."""
    ws = export("HEAD", tmp_path / "ws")
    remove_line(ws, COMMON, '"MiMoForCausalLM": "LLAMA"')
    t = Target(tmp_path / "cache")
    a = analysis_of("XiaomiMiMo--MiMo-7B-Base_config.json")
    cand = t.candidates(a, ws, 3)[0]
    ctx = JobContext(model_type="mimo", work_dir=tmp_path / "work", timeout_s=600, tests_timeout_s=1500)
    report = t.verify(cand, a, ws, ctx, sandbox, True)
    assert not report.passed
    assert report.check("repo_tests").status == "failed" and "test_model_config" in report.check("repo_tests").detail


def test_step_3p7_before_its_family_is_s3_with_reasons(tmp_path):
    ws = export(f"{STEP_FAMILY_COMMIT}^", tmp_path / "ws", "aic-core/src/aiconfigurator_core/sdk")
    plan = Target(tmp_path / "c").plan(analysis_of("stepfun-ai--Step-3.7-Flash_config.json"), ws)
    text = "\n".join(plan.notes)
    assert plan.situation == "S3" and plan.needs_llm
    assert "sliding_attention" in text and "shared expert" in text and "MTP" in text


def test_a_dense_family_for_a_moe_model_fails_verification(tmp_path, sandbox):
    ws = export("HEAD", tmp_path / "ws")
    remove_line(ws, COMMON, '"Qwen3MoeForCausalLM": "MOE"')
    _, _, report = run(tmp_path, ws, "Qwen--Qwen3-30B-A3B_config.json", sandbox, family="LLAMA", run_tests=False)
    assert not report.passed
    assert report.check("family_fit").status == "failed"
    assert report.check("moe_family").status == "failed"  # the repository's own check_is_moe, in the sandbox
