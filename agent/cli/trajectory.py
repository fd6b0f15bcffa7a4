"""`onboard trajectory THREAD`: what the LLM implementer did in a run, step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

ARG_CHARS = 90
OBS_CHARS = 110


def _short(text: str | None, n: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _step_rows(rnd: dict):
    for step in rnd.get("steps", []):
        usage = step.get("usage") or {}
        tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        head = f"{step.get('step', '?')}" + (" (resumed)" if step.get("resumed") else "")
        if step.get("format_error") or step.get("error"):
            yield head, str(tokens), "—", _short(step.get("format_error") or step.get("error"), OBS_CHARS)
        for c in step.get("tool_calls", []):
            yield head, str(tokens), f"{c['name']} {_short(c.get('arguments'), ARG_CHARS)}", \
                _short(c.get("observation"), OBS_CHARS)
            head, tokens = "", ""


def register(app: typer.Typer) -> None:
    @app.command()
    def trajectory(thread: str,
                   data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="(env ONBOARD_DATA_DIR)"),
                   as_json: bool = typer.Option(False, "--json", help="the whole trajectory file")) -> None:
        """What the LLM implementer did in run THREAD: rounds, tool calls, usage, exit status."""
        from rich.table import Table

        from agent.cli.main import fail, settings_for
        from agent.cli.output import out, print_json
        from tools.errors import UserError
        from agent.llm.trajectory import path_for

        from agent.cli.checks import check_thread_id

        try:
            check_thread_id(thread)
            settings = settings_for(data_dir, writes=False)
            path = path_for(settings.path("jobs", thread))
            if not path.exists():
                raise UserError(f"no trajectory for thread {thread} in {settings.data_dir} "
                                "(the LLM implementer did not run for it)")
        except UserError as exc:
            fail(exc)
        data = json.loads(path.read_text())
        if as_json:
            print_json(data)
            return
        usage = data.get("usage") or {}
        s = data.get("settings") or {}
        out.print(f"[bold]{data.get('model_type')} → {data.get('target')}[/]  model {s.get('model')} at "
                  f"{s.get('base_url')}  exit: [bold]{data.get('exit_status')}[/]", highlight=False)
        out.print(f"steps {usage.get('steps', 0)}, tokens {usage.get('total_tokens', 0)} "
                  f"(prompt {usage.get('prompt_tokens', 0)}, completion {usage.get('completion_tokens', 0)}), "
                  f"cost ${usage.get('cost_usd', 0):.4f}, {usage.get('elapsed_s', 0):.1f}s, "
                  f"format errors {data.get('format_errors', 0)}", highlight=False)
        for rnd in data.get("rounds", []):
            t = Table("step", "tokens", "call", "observation",
                      title=f"round {rnd['round']} ({rnd['kind']}, {rnd['candidate']}): {rnd['status']}"
                            + (f" — {rnd['message']}" if rnd.get("message") else ""))
            for row in _step_rows(rnd):
                t.add_row(*row)
            out.print(t)
            if rnd.get("summary"):
                out.print(f"  summary: {rnd['summary']}", highlight=False)
        out.print(f"file: {path}", highlight=False)
