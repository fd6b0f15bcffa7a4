"""The implementer's messages, rendered from prompts/llm/ (Jinja, StrictUndefined).

Issue and chat text enters only through `untrusted()`: masked for secrets,
bounded, fenced off line by line as a quotation, so it reads as data.
"""

from __future__ import annotations

from pathlib import Path

from agent.llm.redact import Redactor
from prompts import ROOT, render

UNTRUSTED_CHARS = 4_000
FAILURE_CHARS = 2_000
ATTEMPT_CHARS = 240  # per earlier candidate; the failure being handed over is shown in full


def attempts_view(state: dict, chars: int = ATTEMPT_CHARS) -> list[dict]:
    """Earlier candidates with their failures shortened: long exporter errors repeat a lot."""
    out = []
    for a in state.get("attempts", []):
        failure = a.get("first_failure") or ""
        out.append({**a, "first_failure": failure if len(failure) <= chars else failure[:chars - 1] + "…"})
    return out


def untrusted(source: str, text: str, redactor: Redactor) -> dict:
    body = redactor.text(text)[:UNTRUSTED_CHARS]
    # A quoted block cannot be closed from inside: no fences, every line prefixed.
    body = body.replace("```", "'''")
    quoted = "\n".join("> " + line for line in body.splitlines()) or "> (empty)"
    return {"source": source, "text": quoted}


def untrusted_inputs(request: dict, redactor: Redactor) -> list[dict]:
    out = []
    for key, label in (("issue_text", "issue text"), ("chat_text", "chat message"), ("comment_text", "comment")):
        if request.get(key):
            out.append(untrusted(label, str(request[key]), redactor))
    return out


def playbook(target, state: dict, tolerance: float) -> str:
    name = f"targets/{target.key.replace('-', '_')}/playbook.md.j2"
    if not (ROOT / name).exists():
        return f"(no playbook for {target.key}; rely on the repository's own patterns)"
    analysis = state["analysis"]
    summary = f"{analysis.get('kind')}; features: {', '.join(analysis.get('features') or []) or 'none'}"
    return render(name, model_type=analysis["model_type"], tolerance=tolerance, situation=state["plan"]["situation"],
                  analysis_summary=summary, attempts=attempts_view(state, 120))


def system(target, state: dict, tools: list[str], max_steps: int, tolerance: float) -> str:
    return render("llm/system.md.j2", target=target.key, tools=tools, max_steps=max_steps,
                  done_when=target.done_when, playbook=playbook(target, state, tolerance))


def task(target, state: dict, candidate: str, failure: str, redactor: Redactor) -> str:
    analysis, plan = state["analysis"], state["plan"]
    return render("llm/task.md.j2", model_type=analysis["model_type"], target=target.key,
                  situation=plan["situation"], kind=analysis.get("kind", "?"),
                  features=analysis.get("features") or [], lineage=analysis.get("lineage") or [],
                  checklist=plan.get("checklist") or [], files=plan.get("files") or [],
                  attempts=attempts_view(state), candidate=candidate, done_when=target.done_when,
                  failure=redactor.text(failure)[:FAILURE_CHARS], references=state.get("references") or [],
                  untrusted=untrusted_inputs(state.get("request", {}), redactor))


def repair(report: dict, round_no: int, rounds: int, redactor: Redactor) -> str:
    first = report.get("first_failure") or "the report names no failure"
    return render("llm/repair.md.j2", round=round_no, rounds=rounds,
                  report=redactor.text(first)[:FAILURE_CHARS], checks=report.get("checks") or [])


def nudge(problem: str, tools: list[str]) -> str:
    return render("llm/nudge_format.md.j2", problem=problem, tools=tools).strip()


def template_names() -> list[str]:
    return sorted(p.name for p in (Path(ROOT) / "llm").glob("*.j2"))
