"""The onboarding graph: nodes are small functions, routing is explicit."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from agent.graph.deps import Deps
from agent.graph.nodes import change
from agent.graph.nodes import finish
from agent.graph.nodes import implement_llm
from agent.graph.nodes import prepare
from agent.graph.nodes import references
from agent.graph.state import OnboardState


def _after_plan(state: OnboardState) -> str:
    if state.get("outcome") == "already_supported":
        return "report"
    return "references" if state.get("candidates") else "report"


def _after_tiny(state: OnboardState) -> str:
    return "report" if state.get("outcome") == "tiny_failed" else "implement"


def build_graph(deps: Deps, checkpointer=None):
    g = StateGraph(OnboardState)
    nodes = (("intake", prepare.intake), ("analyze", prepare.analyze), ("plan", prepare.plan),
             ("references", references.references), ("tiny", prepare.tiny),
             ("implement", change.implement), ("verify", change.verify), ("repair", change.repair),
             ("llm_implement", implement_llm.implement),
             ("publish", finish.publish), ("report", implement_llm.report))
    for name, fn in nodes:
        g.add_node(name, partial(fn, deps=deps))
    g.add_edge(START, "intake")
    g.add_edge("intake", "analyze")
    g.add_edge("analyze", "plan")
    g.add_conditional_edges("plan", _after_plan, ["references", "report"])
    g.add_edge("references", "tiny")
    g.add_conditional_edges("tiny", _after_tiny, ["implement", "report"])
    g.add_edge("implement", "verify")
    g.add_conditional_edges("verify", partial(implement_llm.after_verify, deps=deps),
                            ["publish", "repair", "llm_implement", "report"])
    g.add_conditional_edges("llm_implement", implement_llm.after_llm, ["verify", "report"])
    g.add_edge("repair", "implement")
    g.add_edge("publish", "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    return SqliteSaver(conn)
