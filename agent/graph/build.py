"""The onboarding graph: its nodes (one file each under nodes/) and all of its routing.

intake → analyze → plan → references → [tiny] → implement → verify → publish → report
                                                    ↑            │
                                      next_candidate ┘ ←─────────┤ failed, more candidates
                                      llm_implement  → verify ←──┤ failed, an LLM is configured
                                                     report ←────┘ nothing left to try
"""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Literal

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from agent.graph.deps import Deps
from agent.graph.localise import localise
from agent.graph.nodes.analyze import analyze
from agent.graph.nodes.implement import implement
from agent.graph.nodes.intake import intake
from agent.graph.nodes.llm_implement import llm_implement
from agent.graph.nodes.next_candidate import next_candidate
from agent.graph.nodes.plan import plan
from agent.graph.nodes.publish import publish
from agent.graph.nodes.references import references
from agent.graph.nodes.report import report
from agent.graph.nodes.tiny import tiny
from agent.graph.nodes.verify import verify
from agent.graph.state import OnboardState
from agent.graph.verdict import LLM_PREFIX
from tools.targets.base import Stage

NodeName = Literal["intake", "analyze", "plan", "references", "tiny", "implement", "verify", "next_candidate",
                   "llm_implement", "publish", "report"]
# In the order a run meets them.
NODES: dict[str, object] = {
    "intake": intake, "analyze": analyze, "plan": plan, "references": references, "tiny": tiny,
    "implement": implement, "verify": verify, "next_candidate": next_candidate, "llm_implement": llm_implement,
    "publish": publish, "report": report,
}
# Nodes that run before there is a change to verify (a failure there is not the change's fault).
BEFORE_CHANGE: tuple[NodeName, ...] = ("intake", "analyze", "plan", "references", "tiny")
# What runs after each node on the way to a PR: faces use it to say what a killed run was doing.
RUNS_AFTER: dict[str, NodeName] = {
    "intake": "analyze", "analyze": "plan", "plan": "references", "references": "tiny", "tiny": "implement",
    "implement": "verify", "verify": "publish", "next_candidate": "implement", "llm_implement": "verify",
    "publish": "report", "report": "report",
}


# -- routing: every decision of the graph is here --------------------------------------------------

def after_plan(state: OnboardState) -> NodeName:
    if state.get("outcome") == "already_supported" or not state.get("candidates"):
        return "report"
    return "references"


def after_references(state: OnboardState, deps: Deps) -> NodeName:
    return "tiny" if deps.target.needs_tiny_model else "implement"


def after_tiny(state: OnboardState) -> NodeName:
    return "report" if state.get("outcome") == "tiny_failed" else "implement"


# Verdicts another base would not change. A candidate the repository's own tests refused passed every cheaper
# check: the next base would meet the same tests (what they compare rarely depends on the base). A candidate
# refused at reduced precision matched the reference at full precision: every base's artifact computes the
# same function from the same weights, so compression degrades them alike (measured: three bases of
# ernie4_5_moe, flex_olmo and jetmoe gave identical precision rows). Either way a refusal costs one candidate.
SHARED_VERDICT: tuple[Stage, ...] = ("tests", "precision")


def _refused_for_every_base(state: OnboardState, deps: Deps) -> bool:
    return state["verification"].get("failed_stage") in SHARED_VERDICT and not deps.settings.retry_after_tests


def after_verify(state: OnboardState, deps: Deps) -> NodeName:
    if state["verification"]["passed"]:
        return "publish"
    if state["candidate_index"] + 1 < len(state["candidates"]) and not _refused_for_every_base(state, deps):
        return "next_candidate"
    if not deps.llm.configured:
        return "report"
    if not state["candidates"][state["candidate_index"]]["id"].startswith(LLM_PREFIX):
        return "llm_implement"  # the deterministic candidates are used up
    llm = state.get("llm") or {}
    repairs_done = llm.get("rounds", 0) - 1
    submitted = llm.get("status") == "submitted"
    return "llm_implement" if submitted and repairs_done < deps.settings.repair_attempts else "report"


def after_llm(state: OnboardState) -> NodeName:
    return "verify" if (state.get("llm") or {}).get("status") == "submitted" else "report"


def _local(state: OnboardState, *, fn, deps: Deps) -> dict:
    # A checkpoint written on another worker names that worker's paths: every node reads this one's.
    return fn(localise(state, deps.settings), deps=deps)


def build_graph(deps: Deps, checkpointer=None):
    g = StateGraph(OnboardState)
    for name, fn in NODES.items():
        g.add_node(name, partial(_local, fn=fn, deps=deps))
    g.add_edge(START, "intake")
    g.add_edge("intake", "analyze")
    g.add_edge("analyze", "plan")
    g.add_conditional_edges("plan", after_plan, ["references", "report"])
    g.add_conditional_edges("references", partial(after_references, deps=deps), ["tiny", "implement"])
    g.add_conditional_edges("tiny", after_tiny, ["implement", "report"])
    g.add_edge("implement", "verify")
    g.add_conditional_edges("verify", partial(after_verify, deps=deps),
                            ["publish", "next_candidate", "llm_implement", "report"])
    g.add_conditional_edges("llm_implement", after_llm, ["verify", "report"])
    g.add_edge("next_candidate", "implement")
    g.add_edge("publish", "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    return SqliteSaver(conn)
