"""references: earlier onboardings of similar models, as bounded patterns in state."""

from __future__ import annotations

import time
from pathlib import Path

from agent.graph.deps import Deps
from agent.graph.state import OnboardState

MAX_SUMMARY_FILES = 12


def summarise(ref) -> dict:
    """What the state keeps of a reference: patterns and file kinds, never the raw diff."""
    return {"ref": ref.ref, "sha": ref.sha, "subject": ref.subject, "score": ref.score, "why": ref.why,
            "model_types": ref.model_types, "diff_path": ref.diff_path,
            "files": [{k: f[k] for k in ("path", "status", "kind")} for f in ref.files[:MAX_SUMMARY_FILES]],
            "patterns": ref.patterns}


def references(state: OnboardState, deps: Deps) -> dict:
    from tools.repo.references import select

    t = time.monotonic()
    profile = deps.target.references()
    if profile is None:
        return {"references": [], "timings": {"references": 0.0}}
    if state.get("workspace", {}).get("source") == "sdist":
        # One synthetic commit registers every model at once: no history to learn from.
        deps.progress("references: none (the workspace is a source distribution, without git history)")
        return {"references": [], "timings": {"references": 0.0}}
    mirror = Path(state["request"]["mirror"])
    refs = select(mirror, profile, state["analysis"], deps.settings.caches, k=deps.settings.reference_count,
                  kind_of=profile.kind_of, base_of=profile.base_of,
                  out_dir=Path(state["job_dir"]) / "references",
                  explicit=state["request"].get("references") or None)
    deps.progress("references: " + (", ".join(f"{r.ref} ({r.score})" for r in refs) or
                                    "none in this workspace's history"))
    return {"references": [summarise(r) for r in refs],
            "timings": {"references": round(time.monotonic() - t, 3)}}
