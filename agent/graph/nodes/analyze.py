"""analyze: the model's config, classified (kind, features, lineage, layer pattern)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.graph.context import timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState


def analyze(state: OnboardState, deps: Deps) -> dict:
    from tools.hf.config import analyze as analyze_config

    t = time.monotonic()
    raw = json.loads(Path(state["request"]["config_path"]).read_text())
    analysis = analyze_config(raw).model_dump(mode="json")
    text_key = analysis.get("text_config_key")
    analysis["raw_text_config"] = raw.get(text_key, raw) if text_key else raw
    analysis["raw_config"] = raw  # whole, for targets that package or price the checkpoint's own config
    deps.progress(f"{analysis['model_type']}: {analysis['kind']}, features {', '.join(analysis['features'])}")
    return {"analysis": analysis, **timed("analyze", t)}
