"""What the attempts of a run add up to, decided once.

The report node, the LLM node and the nightly statuses all ask the same two
questions (which attempt came closest, and does the rest need an implementer);
they get the same answers from here, in target-neutral terms: an attempt has
a score (lower is better, None when nothing was compared) and the stage where
it stopped (build, compare, tests).
"""

from __future__ import annotations

import re

LLM_PREFIX = "llm:"
# A base refused for its version bounds got nowhere; one that failed while building got further.
VERSION_REFUSAL = re.compile(r"\bversion\b.*\b(required|allow|support)", re.IGNORECASE)

WHY_LLM = {
    "S1": "no registered family reproduces its numbers, so the change needs more than a registration",
    "S2": "following its closest family is not enough; the new parts must be written or adapted",
    "S3": "it belongs to no supported family, so new code has to be written",
}


def best_attempt(attempts: list[dict], *, deterministic_only: bool = False) -> dict | None:
    """The attempt that got closest: the lowest score among those compared, else the first that got
    furthest (version refusals last)."""
    pool = [a for a in attempts if not (deterministic_only and a["candidate"].startswith(LLM_PREFIX))]
    scored = [a for a in pool if a.get("score") is not None]
    if scored:
        return min(scored, key=lambda a: a["score"])
    tried = [a for a in pool if not VERSION_REFUSAL.search(a.get("first_failure") or "")] or pool
    return tried[0] if tried else None


def needs_llm(plan: dict | None, attempts: list[dict]) -> bool:
    """Does what is left need an implementer rather than another registration?

    Yes when the target said so in its plan (situation beyond S1, or needs_llm), or when a candidate
    was built and compared but disagreed: registration alone reproduces no family's numbers.
    """
    plan = plan or {}
    if plan.get("needs_llm") or plan.get("situation") in ("S2", "S3"):
        return True
    return any(a.get("score") is not None for a in attempts)


def describe(best: dict) -> str:
    """One line on the best attempt, in the target's own words for its score."""
    if best.get("score") is None:
        return f"{best['candidate']} — {best.get('first_failure', '')}"
    div = best.get("divergence") or {}
    where = (f" (first at {', '.join(f'{k} {v}' for k, v in div.items())})" if div else "")
    label = best.get("score_label") or "score"
    return f"{best['candidate']}: {label} {best['score']:.3g}{where} — {best.get('first_failure', '')}"


def refusal(attempts: list[dict]) -> str:
    best = best_attempt(attempts)
    if best is None:
        return "no candidate could be tried"
    return f"no candidate passed; best {describe(best)}"


def llm_hint(model_type: str, kind: str, features: list[str], situation: str, attempts: list[dict],
             result: str) -> str:
    """Why a run stopped short of a PR for want of an LLM endpoint, and how to give it one."""
    tried = ", ".join(a["candidate"] for a in attempts) or "none"
    return (f"needs an LLM endpoint: {model_type} is a {kind or '?'} model "
            f"(features: {', '.join(features) or 'none'}), situation {situation}; "
            f"candidates tried without an LLM: {tried}. Result: {result}. Why an LLM: "
            f"{WHY_LLM.get(situation, WHY_LLM['S2'])}, which is the LLM implementer's job. To let it try, "
            "configure an OpenAI-compatible endpoint (ONBOARD_LLM_BASE_URL, e.g. http://127.0.0.1:8000/v1; "
            "ONBOARD_LLM_MODEL; ONBOARD_LLM_API_KEY if the endpoint needs one) and start the run again.")
