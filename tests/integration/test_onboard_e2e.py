"""The whole path through the real CLI: workspace, analysis, tiny model, patch,
OpenVINO export and parity in a sandbox, PR record in the local forge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests import TESTS

ONBOARD = [str(Path(sys.executable).parent / "onboard")]  # the console script, as a user runs it
CHECKOUT = Path(os.environ.get("ONBOARD_TEST_OI_CHECKOUT", "/work/scratch/optimum-intel"))


def onboard(*args: str, data_dir: Path, timeout: float = 1500) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return subprocess.run([*ONBOARD, *args, "--data-dir", str(data_dir), "--json"], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=TESTS.parent)


def result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout)


def checks(data_dir: Path, thread: str) -> dict[str, dict]:
    report = json.loads((data_dir / "jobs" / thread / "report.json").read_text())
    return {c["name"]: c for c in report["verification"]["checks"]}


def _assert_verified(data_dir: Path, out: dict) -> dict[str, dict]:
    assert out["outcome"] == "pr", out
    found = checks(data_dir, out["thread_id"])
    for name in ("export", "logits_parity", "greedy_tokens", "batch_left_padding"):
        assert found[name]["status"] == "passed", found[name]
    assert found["logits_parity"]["metrics"]["max_abs_diff"] <= 1e-4
    record = json.loads((data_dir / "prs" / "optimum-intel" / "cwm.json").read_text())
    assert record["branch"] == "onboard/optimum-intel/cwm"
    return found


@pytest.mark.integration
def test_cwm_from_the_source_distribution(tmp_path):
    proc = onboard("run", "cwm", "--target", "optimum-intel", "--sandbox", "local", data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _assert_verified(tmp_path, result(proc))
    assert found["tests"]["status"] == "skipped"  # the sdist has no tests/: said, not passed


@pytest.mark.integration
def test_cwm_on_a_real_checkout_registers_and_passes_its_tests(tmp_path):
    if not (CHECKOUT / ".git").exists():
        pytest.skip(f"no optimum-intel git checkout at {CHECKOUT} (set ONBOARD_TEST_OI_CHECKOUT)")
    proc = onboard("run", "cwm", "--target", "optimum-intel", "--repo", str(CHECKOUT), "--sandbox", "local",
                   data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = _assert_verified(tmp_path, result(proc))
    ran = {n: c for n, c in found.items() if n.startswith("tests:")}
    assert {"tests:tests/openvino/test_decoder.py", "tests:tests/openvino/test_export.py"} <= set(ran)
    for c in ran.values():
        assert c["status"] == "passed" and c["metrics"]["counts"].get("passed", 0) > 0, c


@pytest.mark.docker
def test_cwm_in_docker_matches_the_local_report(tmp_path):
    from sandboxes.factory import engine_status
    from sandboxes.images import DEFAULT_IMAGE

    client, why = engine_status(DEFAULT_IMAGE)
    if client is None:
        pytest.skip(f"docker backend not testable here: {why}")
    local, docker = tmp_path / "local", tmp_path / "docker"
    runs = {}
    for name, data_dir in (("local", local), ("docker", docker)):
        proc = onboard("run", "cwm", "--target", "optimum-intel", "--sandbox", name, data_dir=data_dir)
        assert proc.returncode == 0, (name, proc.stderr[-3000:])
        runs[name] = _assert_verified(data_dir, result(proc))
    assert {n: c["status"] for n, c in runs["local"].items()} == {n: c["status"] for n, c in runs["docker"].items()}
    d_local = runs["local"]["logits_parity"]["metrics"]["max_abs_diff"]
    d_docker = runs["docker"]["logits_parity"]["metrics"]["max_abs_diff"]
    assert abs(d_local - d_docker) <= 1e-6  # same image stack, same tiny model, same seed
