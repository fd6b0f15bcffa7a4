"""Against a real VeOmni checkout in VeOmni's own environment (ONBOARD_VEOMNI_CHECKOUT, the venv built
from sandboxes/targets/veomni/requirements.lock): onboard mistral and olmoe, and re-onboard a package
removed from the checkout. About 1-2 minutes per model on two cores."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.hf.config import analyze
from tools.targets.base import JobContext
from tools.targets.veomni.target import VeOmniTarget

CHECKOUT = os.environ.get("ONBOARD_VEOMNI_CHECKOUT", "")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not Path(CHECKOUT, "patchgen-pkg").is_dir(), reason="no VeOmni checkout")]


def _analysis(mt: str, raw: dict | None = None) -> dict:
    from transformers import AutoConfig

    raw = raw or {**AutoConfig.for_model(mt).to_dict()}
    raw["architectures"] = raw.get("architectures") or [type(AutoConfig.for_model(mt)).__name__.replace(
        "Config", "ForCausalLM")]
    a = analyze(raw).model_dump(mode="json")
    a["raw_text_config"] = raw
    return a


def _onboard(tmp_path: Path, mt: str, ws: Path, raw: dict | None = None):
    from sandboxes.factory import make_sandbox

    t = VeOmniTarget(tmp_path / "cache")
    a = _analysis(mt, raw)
    cand = t.candidates(a, ws, 1)[0]
    ctx = JobContext(model_type=mt, work_dir=tmp_path / f"job-{mt}")
    t.apply(cand, a, ws, ctx)
    return t.verify(cand, a, ws, ctx, make_sandbox("local", t.env), run_tests=True)


def _clone(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    subprocess.run(["git", "clone", "-q", CHECKOUT, str(ws)], check=True)
    return ws


@pytest.mark.parametrize("mt", ["mistral", "olmoe"])
def test_new_model_onboards_green(tmp_path, mt):
    report = _onboard(tmp_path, mt, _clone(tmp_path))
    assert report.passed, report.first_failure
    assert report.score is not None and report.score <= 1e-4
    if mt == "olmoe":
        assert report.check("expert_plan").status == "passed"


def test_removed_package_is_reonboarded(tmp_path):
    ws = _clone(tmp_path)
    raw = __import__("json").loads((ws / "tests/toy_config/qwen2_toy/config.json").read_text())
    shutil.rmtree(ws / "veomni/models/transformers/qwen2")
    init = ws / "veomni/models/transformers/__init__.py"
    init.write_text(re.sub(r'\n\s+"?qwen2"?,', "", init.read_text()))
    report = _onboard(tmp_path, "qwen2", ws, raw)
    for name in ("registry", "patchgen_check", "parity"):
        assert report.check(name).status == "passed", report.check(name).detail
