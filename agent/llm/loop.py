"""The LLM implementer: a tool loop under budgets, recorded step by step.

One round = the model works with tools until it calls `finish` or a budget,
format or endpoint failure ends it. The conversation lives in the trajectory
file, rewritten after every LLM step and every tool call, so a killed run
continues where it stopped: tool calls already answered are never executed
again, and a call cut short is re-run, which the edit tools make harmless
(an edit already made is reported as applied).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from agent.llm import prompts as llm_prompts
from agent.llm.client import Budget, ExitStatus, LLMClient, LLMError, MalformedReply, ToolCall
from agent.llm.redact import Redactor
from agent.llm.trajectory import Trajectory
from tools.llm_tools import Tool, ToolContext, ToolRefused
from tools.llm_tools.base import bound


KEEP_OBSERVATIONS = 6  # the latest tool observations are sent whole
OLD_OBSERVATION_CHARS = 400


@dataclass
class LoopResult:
    status: ExitStatus
    message: str
    summary: str | None = None


class ToolLoop:
    def __init__(self, client: LLMClient, tools: dict[str, Tool], ctx: ToolContext, budget: Budget,
                 traj: Trajectory, redactor: Redactor, max_format_errors: int = 3,
                 progress: Callable[[str], None] = lambda m: None, round_start: int = 0):
        self.client, self.tools, self.ctx, self.budget = client, tools, ctx, budget
        self.traj, self.redactor, self.progress = traj, redactor, progress
        self.max_format_errors = max_format_errors
        self.specs = [t.spec(ctx) for t in tools.values()]
        self._consecutive = 0
        self.round_start = round_start  # index of this round's first message

    @property
    def messages(self) -> list[dict]:
        return self.traj.messages

    # -- the loop ------------------------------------------------------------------
    def run(self) -> LoopResult:
        self._answer_pending()
        while self.ctx.finished is None:
            stop = self.budget.exhausted()
            if stop:
                return LoopResult(*stop)
            step = {"step": self.budget.steps + 1, "at_s": round(self.budget.elapsed_s, 3), "tool_calls": []}
            try:
                reply = self.client.complete(self.view(), self.specs, timeout_s=self.budget.remaining_s)
            except MalformedReply as exc:
                self.budget.record(exc.usage)
                step.update(usage=_usage(exc.usage), format_error=str(exc))
                if self._format_error(step, str(exc)):
                    return LoopResult("exit_format", self._format_message())
                continue
            except LLMError as exc:
                if exc.usage.total:
                    self.budget.record(exc.usage)
                step.update(error=str(exc))
                self.traj.add_step(step)
                self.traj.save(self.budget.snapshot())
                if self.budget.remaining_s <= 0:  # the call was cut by the wall-time budget
                    return LoopResult("exit_time", f"wall-time cap {self.budget.max_wall_s:.0f}s reached "
                                                   f"during a call ({exc})")
                return LoopResult("exit_error", f"LLM endpoint failed: {exc}")
            self.budget.record(reply.usage)
            step.update(usage=_usage(reply.usage), retries=reply.retries, finish_reason=reply.finish_reason,
                        content=reply.content)
            self.messages.append(self.redactor.data(reply.as_message()))
            if not reply.tool_calls:
                if self._format_error(step, "it contained no tool call"):
                    return LoopResult("exit_format", self._format_message())
                continue
            self.traj.add_step(step)
            usable = sum(self._execute(call, step) for call in reply.tool_calls)
            self._consecutive = 0 if usable else self._consecutive + 1
            self.progress(f"llm step {step['step']}: " + ", ".join(c.name or "?" for c in reply.tool_calls))
            if not usable and self._consecutive >= self.max_format_errors:
                return LoopResult("exit_format", self._format_message())
        return LoopResult("submitted", "the model called finish", self.ctx.finished)

    def view(self) -> list[dict]:
        """What is sent: older observations shortened, so the prompt does not grow with every read.

        The trajectory keeps them whole; the model can always read a file again.
        """
        tool_idx = [i for i, m in enumerate(self.messages) if m.get("role") == "tool"]
        old = set(tool_idx[:-KEEP_OBSERVATIONS]) if len(tool_idx) > KEEP_OBSERVATIONS else set()
        out = []
        for i, m in enumerate(self.messages):
            if i in old and len(m.get("content") or "") > OLD_OBSERVATION_CHARS:
                m = {**m, "content": m["content"][:OLD_OBSERVATION_CHARS] + "\n[older observation shortened]"}
            out.append(m)
        return out

    # -- pieces ---------------------------------------------------------------------
    def _format_error(self, step: dict, problem: str) -> bool:
        """Feed the problem back; True when the run must end (too many in a row)."""
        self._consecutive += 1
        self.traj.data["format_errors"] = self.traj.data.get("format_errors", 0) + 1
        step["format_error"] = problem
        self.messages.append({"role": "user", "content": llm_prompts.nudge(problem, list(self.tools))})
        self.traj.add_step(step)
        self.traj.save(self.budget.snapshot())
        return self._consecutive >= self.max_format_errors

    def _format_message(self) -> str:
        return f"{self._consecutive} replies in a row without a usable tool call"

    def _execute(self, call: ToolCall, step: dict) -> bool:
        """Run one call and append its observation; False when the call itself was malformed."""
        t = time.monotonic()
        usable = True
        tool = self.tools.get(call.name)
        if tool is None:
            usable = False
            obs = f"error: there is no tool named {call.name!r}; the tools are {', '.join(self.tools)}"
        else:
            try:
                args = json.loads(call.arguments or "{}")
                if not isinstance(args, dict):
                    raise ValueError("the arguments must be a JSON object")
            except ValueError as exc:
                usable = False
                obs = (f"error: the arguments of {call.name} are not a JSON object ({exc}); "
                       "resend the call with valid JSON")
            else:
                obs = self._run_tool(tool, args)
        if not usable:
            self.traj.data["format_errors"] = self.traj.data.get("format_errors", 0) + 1
        obs = self.redactor.text(bound(obs, self.ctx.output_chars))
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": obs})
        step["tool_calls"].append({"id": call.id, "name": call.name, "arguments": call.arguments,
                                   "observation": obs, "ok": usable and not obs.startswith("error:"),
                                   "seconds": round(time.monotonic() - t, 3)})
        self.traj.save(self.budget.snapshot())
        return usable

    def _run_tool(self, tool: Tool, args: dict) -> str:
        try:
            return tool.run(args, self.ctx)
        except ToolRefused as exc:
            return f"error: {exc}"
        except Exception as exc:  # a failing tool is an observation, not the end of the run
            return f"error: {tool.name} failed: {type(exc).__name__}: {str(exc)[:300]}"

    def _answer_pending(self) -> None:
        """After a resume: answer the tool calls of the last assistant message that have no observation."""
        last = next((i for i in range(len(self.messages) - 1, self.round_start - 1, -1)
                     if self.messages[i].get("role") == "assistant"), None)
        if last is None or not self.messages[last].get("tool_calls"):
            return
        answered = {m.get("tool_call_id") for m in self.messages[last + 1:] if m.get("role") == "tool"}
        pending = [c for c in self.messages[last]["tool_calls"] if c["id"] not in answered]
        if pending:
            step = {"step": self.budget.steps, "resumed": True, "tool_calls": []}
            self.traj.add_step(step)
            for c in pending:
                self._execute(ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]), step)
        # A finish answered before the kill still counts: the model must not be asked again.
        for c in self.messages[last]["tool_calls"]:
            obs = next((m["content"] for m in self.messages[last + 1:]
                        if m.get("role") == "tool" and m.get("tool_call_id") == c["id"]), "")
            if c["function"]["name"] == "finish" and obs.startswith("submitted") and self.ctx.finished is None:
                try:
                    self.ctx.finished = str(json.loads(c["function"]["arguments"]).get("summary", ""))
                except (ValueError, AttributeError):
                    self.ctx.finished = ""


def _usage(u) -> dict:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}

