"""Shared by the aiconfigurator tests: analyses of stored configs and a copy of the fixture repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.hf.config import analyze

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
FIXTURE = HERE / "fixtures" / "repo"
COMMON = "aic-core/src/aiconfigurator_core/sdk/common.py"
UTILS = "aic-core/src/aiconfigurator_core/sdk/utils.py"


def analysis_of(raw: dict | str) -> dict:
    """What the graph's analyze node hands a target: the analysis plus the raw (text) config."""
    if isinstance(raw, str):
        raw = json.loads((DATA / raw).read_text())
    a = analyze(raw).model_dump(mode="json")
    key = a.get("text_config_key")
    a["raw_text_config"] = raw.get(key, raw) if key else raw
    return a


def fixture_repo(tmp_path: Path) -> Path:
    ws = tmp_path / "repo"
    shutil.copytree(FIXTURE, ws)
    return ws


def remove_line(ws: Path, rel: str, text: str) -> None:
    path = ws / rel
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if text not in ln]
    assert len(kept) == len(lines) - 1, f"{text!r} is not exactly one line of {rel}"
    path.write_text("".join(kept))


def run_fixture(ws: Path, *args: str) -> subprocess.CompletedProcess:
    """Python in the fixture repository, its core package on the path (as the sandbox lays it out)."""
    env = {**os.environ, "PYTHONPATH": str(ws / "aic-core" / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=120)


def parse_in_fixture(ws: Path, config: dict) -> dict:
    code = ("import json, sys; from aiconfigurator_core.sdk.utils import _parse_hf_config_json as p; "
            "r = p(json.loads(sys.argv[1])); e = r['extra_params']; "
            "r['extra_params'] = list(e.layer_types) if hasattr(e, 'layer_types') else repr(e); print(json.dumps(r))")
    proc = run_fixture(ws, "-c", code, json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def pytest_in_fixture(ws: Path, *paths: str) -> subprocess.CompletedProcess:
    return run_fixture(ws, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *paths)
