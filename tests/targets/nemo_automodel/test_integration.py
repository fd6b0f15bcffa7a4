"""The nemo-automodel target against a real checkout, in its own environment (minutes; integration).

Set ONBOARD_NEMO_AUTOMODEL_CHECKOUT to a clone of NVIDIA-NeMo/Automodel (measured at 36044ad3d). The
environment (sandboxes/targets/nemo_automodel/requirements.lock) is built on first use.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.targets.nemo_automodel.helpers import QWEN2_MOE, QWEN3_DENSE, QWEN3_MOE, analysis_of
from tools.targets.base import Candidate, JobContext
from tools.targets.nemo_automodel import Target
from tools.targets.nemo_automodel.registry import REGISTRY, arch_mapping
from tools.targets.nemo_automodel.target import JOB, TOLERANCE
from tools.targets.nemo_automodel.tiny import write_tiny

pytestmark = pytest.mark.integration
CHECKOUT = os.environ.get("ONBOARD_NEMO_AUTOMODEL_CHECKOUT")
needs_checkout = pytest.mark.skipif(not CHECKOUT, reason="ONBOARD_NEMO_AUTOMODEL_CHECKOUT is not set")


@pytest.fixture(scope="module")
def sandbox():
    from sandboxes.factory import make_sandbox

    return make_sandbox("local", Target.env)


def _copy(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(CHECKOUT, ws, ignore=shutil.ignore_patterns(".git"))
    return ws


def _onboard(tmp_path, ws, analysis, sandbox, expect: str, run_tests: bool = True):
    target = Target(tmp_path / "cache")
    cands = target.candidates(analysis, ws, 3)
    assert cands and cands[0].id == expect, [c.id for c in cands]
    ctx = JobContext(model_type=analysis["model_type"], work_dir=tmp_path / "work", timeout_s=900, tests_timeout_s=1200)
    target.apply(cands[0], analysis, ws, ctx)
    return target.verify(cands[0], analysis, ws, ctx, sandbox, run_tests=run_tests)


def _assert_onboarded(report):
    # The measurements, for the record (`pytest -s`): parity, and how long the sandbox took.
    print(f"\n{report.score_label} = {report.score!r}; checks: "
          + ", ".join(f"{c.name}={c.status}" for c in report.checks) + f"; timings: {report.timings}")
    failed = [(c.name, c.detail) for c in report.checks if c.status != "passed"]
    assert report.passed and not failed, failed
    assert report.check("round_trip").status == "passed"
    assert report.score is not None and report.score <= TOLERANCE


@needs_checkout
def test_qwen2_moe_is_onboarded_with_exact_round_trip_and_parity(tmp_path, sandbox):
    ws = _copy(tmp_path)
    report = _onboard(tmp_path, ws, analysis_of(QWEN2_MOE), sandbox, "derive:qwen3_moe")
    _assert_onboarded(report)
    assert report.check("moe_provenance").status == "passed"
    assert report.check("tests:tests/unit_tests/models/qwen2_moe/test_qwen2_moe_state_dict_adapter.py").status == "passed"


def _unregister(ws: Path, arch: str) -> None:
    reg = ws / REGISTRY
    text = reg.read_text()
    entry = re.search(rf'        \(\n            "{arch}",\n.*?\n        \),\n', text, re.S).group(0)
    reg.write_text(text.replace(entry, ""))
    assert arch not in arch_mapping(ws)


@needs_checkout
def test_a_model_taken_out_of_the_registry_is_re_onboarded_on_its_own_directory(tmp_path, sandbox):
    """The registry entry goes; the directory stays (the repository's invariant test then fails until
    the entry is back): the re-onboarding registers the directory's own class and every test passes."""
    ws = _copy(tmp_path)
    _unregister(ws, "Qwen3ForCausalLM")
    _assert_onboarded(_onboard(tmp_path, ws, analysis_of(QWEN3_DENSE), sandbox, "alias:qwen3"))


@needs_checkout
def test_a_model_removed_with_its_directory_is_re_onboarded_on_the_closest_implementation(tmp_path, sandbox):
    """Entry and directory go; qwen3_moe (whose dense path Qwen3 is) covers it, with exact round trip and
    parity. The repository's own tests are not run here: Qwen3-VL and the speculative-decoding drafts
    import the deleted directory, so their tests fail because of the removal, not the onboarding."""
    ws = _copy(tmp_path)
    _unregister(ws, "Qwen3ForCausalLM")
    shutil.rmtree(ws / "nemo_automodel/components/models/qwen3")
    report = _onboard(tmp_path, ws, analysis_of(QWEN3_DENSE), sandbox, "alias:qwen3_moe", run_tests=False)
    _assert_onboarded(report)


@needs_checkout
@pytest.mark.parametrize("mutation,names", [("swap_experts", "routed expert 0 of layer 0"),
                                            ("router_as_expert", "mapped into expert tensor")])
def test_mapping_bugs_are_caught(tmp_path, sandbox, mutation, names):
    from tools.targets.sandbox_job import run_job

    analysis = analysis_of(QWEN3_MOE)
    tiny = write_tiny(analysis["raw_text_config"], tmp_path / "tiny")
    ctx = JobContext(model_type="qwen3_moe", tiny_dir=tiny, work_dir=tmp_path / "work", parity_tolerance=TOLERANCE)
    report = run_job(sandbox, JOB, Path(CHECKOUT), ctx,
                     {"phase": "verify", "arch": "Qwen3MoeForCausalLM", "mutate": mutation}, 900)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["moe_provenance"]["status"] == "failed" and names in checks["moe_provenance"]["detail"]
    unmutated = run_job(sandbox, JOB, Path(CHECKOUT), ctx.model_copy(update={"work_dir": tmp_path / "w2"}),
                        {"phase": "verify", "arch": "Qwen3MoeForCausalLM"}, 900)
    assert {c["name"]: c["status"] for c in unmutated["checks"]}["moe_provenance"] == "passed"
