"""Devices and the precision matrix as settings, the request's device label, and what reaches the sandbox."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.graph.context import devices_for
from agent.graph.request import Request
from agent.settings import Settings


def test_devices_setting_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ONBOARD_DEVICES", "cpu, gpu")
    assert Settings(data_dir=tmp_path).devices == ["CPU", "GPU"]
    monkeypatch.setenv("ONBOARD_DEVICES", "")
    assert Settings(data_dir=tmp_path).devices is None  # unset: what the runtime reports


def test_bad_devices_and_tolerances_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="'CPU', 'GPU' or 'NPU'"):
        Settings(data_dir=tmp_path, devices="TPU")
    with pytest.raises(ValidationError, match="unknown precision 'fp8'"):
        Settings(data_dir=tmp_path, precision_tolerances={"fp8": {"min_top1": 0.5}})
    with pytest.raises(ValidationError, match="unknown tolerance 'top1'"):
        Settings(data_dir=tmp_path, precision_tolerances={"int4": {"top1": 0.5}})


def test_the_matrix_can_be_turned_off(monkeypatch, tmp_path):
    assert Settings(data_dir=tmp_path).precision_matrix is True
    monkeypatch.setenv("ONBOARD_PRECISION_MATRIX", "0")
    assert Settings(data_dir=tmp_path).precision_matrix is False


def test_request_device_label_routes_the_job_and_is_validated(tmp_path):
    assert Request(model="cwm", device="GPU").device == "GPU"
    with pytest.raises(ValidationError):
        Request(model="cwm", device="TPU")
    settings = Settings(data_dir=tmp_path)
    assert devices_for(settings, {"device": "GPU"}) == ["GPU"]
    assert devices_for(settings, {}) is None
    assert devices_for(Settings(data_dir=tmp_path, devices="CPU,NPU"), {"device": "GPU"}) == ["CPU", "NPU"]


def test_the_docker_sandbox_is_offered_the_requested_accelerators(monkeypatch, tmp_path):
    import sandboxes.factory as factory
    from agent.graph.run import make_sandbox
    from sandboxes.envs import SandboxEnv

    seen = {}
    monkeypatch.setattr(factory, "make_sandbox", lambda kind, env, **kw: seen.update(kw) or "box")
    env = SandboxEnv(name="x", dir=tmp_path)
    make_sandbox(Settings(data_dir=tmp_path, sandbox="docker", devices="CPU,GPU"), env)
    assert seen["devices"] == ("GPU",)
    make_sandbox(Settings(data_dir=tmp_path, sandbox="docker"), env)
    assert seen["devices"] == ("GPU", "NPU")  # unset: every accelerator, passed only where present


def test_run_with_an_unknown_device_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    from tests import TESTS

    res = subprocess.run([sys.executable, "-m", "agent.cli.main", "run", "cwm", "--devices", "TPU", "--data-dir",
                          str(tmp_path / "d")], capture_output=True, text=True, cwd=TESTS.parent)
    assert res.returncode == 2 and "invalid setting devices" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
