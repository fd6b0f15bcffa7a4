"""Shared by the nemo-automodel tests: the fixture repository and the real configs kept in data/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "repo"
DATA = HERE / "data"
QWEN2_MOE = DATA / "Qwen--Qwen1.5-MoE-A2.7B_config.json"
QWEN3_DENSE = DATA / "Qwen--Qwen3-8B_config.json"
QWEN3_MOE = DATA / "Qwen--Qwen3-30B-A3B_config.json"


def fixture_repo(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(FIXTURE, ws)
    return ws


def analysis_of(path: Path) -> dict:
    from tools.hf.config import analyze

    raw = json.loads(path.read_text())
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return analysis
