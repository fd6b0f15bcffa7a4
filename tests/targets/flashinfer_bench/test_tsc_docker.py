"""flashinfer-bench's `tsc --strict` check inside its own docker image (node, TypeScript, zod baked in).

The image is built FROM a base (ONBOARD_SANDBOX_TEST_IMAGE, else onboarder-optimum-intel:latest): the TS check
needs only node, so a bare Debian base proves it as well as the full verification image does.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests import TESTS
from tools.targets.flashinfer_bench.checks import tsc_check
from tools.targets.flashinfer_bench.models_ts import MODELS_TS
from tools.targets.flashinfer_bench.target import ENV

pytestmark = pytest.mark.docker
BASE = os.environ.get("ONBOARD_SANDBOX_TEST_IMAGE", "onboarder-optimum-intel:latest")


@pytest.fixture(scope="module")
def sandbox():
    from sandboxes.docker import DockerSandbox
    from sandboxes.factory import engine_status
    from sandboxes.images import ImageError, build_env

    client, why = engine_status(BASE)
    if client is None:
        pytest.skip(f"no engine or base image: {why}")
    if not shutil.which("node"):
        pytest.skip("node is not installed on the host, so the image cannot be staged")
    tag = f"onboarder-flashinfer-bench:test-{BASE.replace(':', '-').replace('/', '-')}"
    try:
        build_env(ENV, base=BASE, tag=tag, latest=False)  # a test image is nobody's latest
    except ImageError as exc:
        pytest.fail(f"the flashinfer-bench image did not build: {exc}")
    return DockerSandbox(tag)


def test_models_ts_type_checks_in_the_image_and_a_bad_type_fails(sandbox, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(TESTS / "fixtures" / "flashinfer_bench" / "repo", ws)
    ok = tsc_check(ws, tmp_path / "unused-node-modules", tmp_path / "tsc", sandbox)
    assert ok.status == "passed", ok.detail
    ts = ws / MODELS_TS
    ts.write_text(ts.read_text().replace('type: "layer",', 'type: "leaf",', 1))
    bad = tsc_check(ws, tmp_path / "unused-node-modules", tmp_path / "tsc2", sandbox)
    assert bad.status == "failed" and "error TS" in bad.detail, bad.detail
