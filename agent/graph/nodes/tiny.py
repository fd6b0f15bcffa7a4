"""tiny: a small random model with the same architecture (only for targets that run one)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.graph.context import timed
from agent.graph.deps import Deps
from agent.graph.state import OnboardState


def tiny(state: OnboardState, deps: Deps) -> dict:
    from tools.tiny.model import TinyModelError, build_tiny

    t = time.monotonic()
    raw = json.loads(Path(state["request"]["config_path"]).read_text())
    try:
        model = build_tiny(raw, deps.settings.caches / "tiny")
    except TinyModelError as exc:
        # nothing to run or compare against: no candidate (and no LLM) can be verified
        deps.progress(f"no tiny model: {exc}")
        return {"outcome": "tiny_failed", "message": f"no tiny model to verify against: {exc}", **timed("tiny", t)}
    cfg = model.config.get(state["analysis"].get("text_config_key") or "", model.config)
    deps.progress(f"tiny model {model.num_params:,} params ({'cached' if model.cached else 'built'})")
    return {"tiny": {"path": str(model.path), "num_params": model.num_params,
                     "layers": cfg.get("num_hidden_layers"), "window": cfg.get("sliding_window"),
                     "cached": model.cached, "build_seconds": model.build_seconds,
                     # what a worker that rebuilds this model elsewhere must match (agent.graph.recreate)
                     "digest": getattr(model, "digest", None)},
            **timed("tiny", t)}
