"""An MoE type from the open gap onboarded end to end by the deterministic path (no LLM): the
moe_batched_mm pattern writes a patcher that calls optimum-intel's register_ov_batched_mm, and the real
export, f32 parity and greedy checks decide. Through the real CLI, on the package-index source
distribution (no tests/) and, when a git checkout is at hand, with the repository's own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests import TESTS

pytestmark = pytest.mark.integration

ONBOARD = [str(Path(sys.executable).parent / "onboard")]
CHECKOUT = Path(os.environ.get("ONBOARD_TEST_OI_CHECKOUT", "/work/scratch/optimum-intel"))
MODEL = "olmoe"  # its experts use transformers' experts interface; a plain alias leaves them untraceable


def onboard(*args: str, data_dir: Path, timeout: float = 2400) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    proc = subprocess.run([*ONBOARD, *args, "--data-dir", str(data_dir), "--json"], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=TESTS.parent)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["outcome"] == "pr", (out, proc.stderr[-3000:])
    return out


def _verified_with_the_moe_pattern(data_dir: Path, out: dict) -> dict[str, dict]:
    report = json.loads((data_dir / "jobs" / out["thread_id"] / "report.json").read_text())
    found = {c["name"]: c for c in report["verification"]["checks"]}
    for name in ("export", "logits_parity", "greedy_tokens", "batch_left_padding", "long_sequence_parity"):
        assert found[name]["status"] == "passed", found[name]
    assert found["logits_parity"]["metrics"]["max_abs_diff"] <= 1e-4
    record = json.loads((data_dir / "prs" / "optimum-intel" / f"{MODEL}.json").read_text())
    diff = Path(record["diff_path"]).read_text()
    added = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert not [ln for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]  # additive
    assert "class OlmoeModelPatcher(OVDecoderModelPatcher):" in added
    assert "        register_ov_batched_mm(self)" in added  # the upstream helper, called, not copied
    assert not any(ln.startswith("def ") for ln in added if "_create_tiny_" not in ln)
    body = Path(record["body_path"]).read_text()
    assert "`moe_batched_mm`" in body and "OlmoeExperts" in body
    return found


def test_olmoe_from_the_source_distribution(tmp_path):
    out = onboard("run", MODEL, "--target", "optimum-intel", "--sandbox", "local", data_dir=tmp_path)
    found = _verified_with_the_moe_pattern(tmp_path, out)
    assert found["tests"]["status"] == "skipped"  # the sdist has no tests/


def test_olmoe_on_a_real_checkout_passes_its_tests(tmp_path):
    if not (CHECKOUT / ".git").exists():
        pytest.skip(f"no optimum-intel git checkout at {CHECKOUT} (set ONBOARD_TEST_OI_CHECKOUT)")
    out = onboard("run", MODEL, "--target", "optimum-intel", "--repo", str(CHECKOUT), "--sandbox", "local",
                  data_dir=tmp_path)
    found = _verified_with_the_moe_pattern(tmp_path, out)
    ran = {n: c for n, c in found.items() if n.startswith("tests:")}
    assert "tests:tests/openvino/test_decoder.py" in ran
    for c in ran.values():
        assert c["status"] == "passed" and c["metrics"]["counts"].get("passed", 0) > 0, c
