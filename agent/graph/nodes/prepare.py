"""intake, analyze, plan, tiny: everything before the first edit."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.graph.deps import Deps
from agent.graph.state import OnboardState
from tools.repo.workspace import Workspace


def _timed(name: str, start: float) -> dict:
    return {"timings": {name: round(time.monotonic() - start, 3)}}


def intake(state: OnboardState, deps: Deps) -> dict:
    """Create the job's worktree (the request itself was validated before the graph started)."""
    t = time.monotonic()
    ws = Workspace(**state["workspace"])
    job_dir = Path(state["job_dir"])
    dest = job_dir / "workspace"
    mirror = Path(state["request"]["mirror"])
    deps.repos.worktree(mirror, ws.base_rev, dest)
    deps.progress(f"workspace {dest} at {ws.base_rev[:12]} ({ws.source})")
    return {"workspace": {**state["workspace"], "path": str(dest)}, **_timed("intake", t)}


def analyze(state: OnboardState, deps: Deps) -> dict:
    from tools.hf.config import analyze as analyze_config

    t = time.monotonic()
    raw = json.loads(Path(state["request"]["config_path"]).read_text())
    analysis = analyze_config(raw).model_dump(mode="json")
    text_key = analysis.get("text_config_key")
    analysis["raw_text_config"] = raw.get(text_key, raw) if text_key else raw
    deps.progress(f"{analysis['model_type']}: {analysis['kind']}, features {', '.join(analysis['features'])}")
    return {"analysis": analysis, **_timed("analyze", t)}


def plan(state: OnboardState, deps: Deps) -> dict:
    t = time.monotonic()
    ws = Path(state["workspace"]["path"])
    analysis = state["analysis"]
    if analysis["model_type"] in deps.target.supported_types(ws):
        return {"outcome": "already_supported",
                "message": f"{analysis['model_type']} is already registered in {deps.target.name} "
                           f"at {state['workspace']['base_rev'][:12]}: nothing to onboard",
                **_timed("plan", t)}
    the_plan = deps.target.plan(analysis, ws)
    candidates = deps.target.candidates(analysis, ws, deps.settings.max_candidates)
    deps.progress(f"{the_plan.situation}; candidates: {', '.join(c.id for c in candidates) or 'none'}")
    return {"plan": the_plan.model_dump(), "candidates": [c.model_dump() for c in candidates],
            "candidate_index": 0, **_timed("plan", t)}


def tiny(state: OnboardState, deps: Deps) -> dict:
    from tools.tiny.model import TinyModelError, build_tiny

    t = time.monotonic()
    raw = json.loads(Path(state["request"]["config_path"]).read_text())
    try:
        model = build_tiny(raw, deps.settings.caches / "tiny")
    except TinyModelError as exc:
        # nothing to export or compare against: no candidate (and no LLM) can be verified
        deps.progress(f"no tiny model: {exc}")
        return {"outcome": "tiny_failed", "message": f"no tiny model to verify against: {exc}",
                **_timed("tiny", t)}
    cfg = model.config.get(state["analysis"].get("text_config_key") or "", model.config)
    deps.progress(f"tiny model {model.num_params:,} params ({'cached' if model.cached else 'built'})")
    return {"tiny": {"path": str(model.path), "num_params": model.num_params,
                     "layers": cfg.get("num_hidden_layers"), "window": cfg.get("sliding_window"),
                     "cached": model.cached, "build_seconds": model.build_seconds},
            **_timed("tiny", t)}
