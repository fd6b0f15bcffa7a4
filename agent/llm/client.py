"""Chat with tool calling through any OpenAI-compatible endpoint, under budgets.

`LLMClient` is the seam: the implementer's loop only sees `complete()`; the
OpenAI implementation is one class, and tests point it at a scripted server
on loopback rather than replacing it. Budgets are checked *before* every call
(a cap that is only checked afterwards is a cap the bill can jump), and usage
is counted from every response, including the ones the loop cannot use.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from agent.llm.settings import LLMSettings, Price

ExitStatus = Literal["submitted", "exit_cost", "exit_steps", "exit_time", "exit_format", "exit_error"]
EXIT_STATUSES: tuple[str, ...] = get_args(ExitStatus)

# Local servers (Ollama, llama.cpp, vLLM without auth) accept any key; the
# openai client refuses to start without one.
PLACEHOLDER_KEY = "no-key"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it; parsed (and judged) by the loop


@dataclass
class Reply:
    content: str | None
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: str | None = None
    retries: int = 0  # transient failures absorbed before this reply

    def as_message(self) -> dict:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in self.tool_calls]
        return msg


class LLMError(Exception):
    """A call that cannot succeed by retrying (bad key, bad request, retries used up)."""

    def __init__(self, message: str, usage: Usage | None = None):
        super().__init__(message)
        self.usage = usage or Usage()


class MalformedReply(LLMError):
    """The endpoint answered, but not with a chat completion we can read."""


@runtime_checkable
class LLMClient(Protocol):
    def complete(self, messages: list[dict], tools: list[dict], timeout_s: float) -> Reply:
        """One chat completion; raises LLMError (with any usage it saw) when it cannot."""

    def describe(self) -> dict:
        """What the trajectory records about this client (never a secret)."""


@dataclass
class Budget:
    """Limits and what has been spent; `spent_*` survive a resume via the trajectory."""

    max_steps: int
    max_tokens: int
    max_cost_usd: float
    max_wall_s: float
    price: Price = field(default_factory=Price)
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    elapsed_before_s: float = 0.0  # wall time spent by earlier processes (resume)
    _started: float = field(default_factory=time.monotonic)

    @classmethod
    def from_settings(cls, s: LLMSettings) -> "Budget":
        return cls(max_steps=s.max_steps, max_tokens=s.max_tokens, max_cost_usd=s.max_cost_usd,
                   max_wall_s=s.max_wall_s, price=s.price())

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before_s + time.monotonic() - self._started

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.max_wall_s - self.elapsed_s)

    def exhausted(self) -> tuple[ExitStatus, str] | None:
        """Why no further call may be made, or None. Called before every call."""
        if self.cost_usd >= self.max_cost_usd:
            return "exit_cost", f"cost ${self.cost_usd:.4f} reached the cap ${self.max_cost_usd:.2f}"
        if self.usage.total >= self.max_tokens:
            return "exit_cost", f"{self.usage.total} tokens reached the cap {self.max_tokens}"
        if self.steps >= self.max_steps:
            return "exit_steps", f"{self.steps} steps reached the cap {self.max_steps}"
        if self.remaining_s <= 0:
            return "exit_time", f"{self.elapsed_s:.0f}s reached the wall-time cap {self.max_wall_s:.0f}s"
        return None

    def record(self, usage: Usage) -> None:
        self.steps += 1
        self.usage.add(usage)
        self.cost_usd += (usage.prompt_tokens * self.price.input
                          + usage.completion_tokens * self.price.output) / 1e6

    def snapshot(self) -> dict:
        return {"steps": self.steps, "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens, "total_tokens": self.usage.total,
                "cost_usd": round(self.cost_usd, 6), "elapsed_s": round(self.elapsed_s, 3),
                "limits": {"steps": self.max_steps, "tokens": self.max_tokens,
                           "cost_usd": self.max_cost_usd, "wall_s": self.max_wall_s}}

    def restore(self, snap: dict) -> None:
        self.steps = int(snap.get("steps", 0))
        self.usage = Usage(int(snap.get("prompt_tokens", 0)), int(snap.get("completion_tokens", 0)))
        self.cost_usd = float(snap.get("cost_usd", 0.0))
        self.elapsed_before_s = float(snap.get("elapsed_s", 0.0))
        self._started = time.monotonic()


def _usage_of(completion: Any) -> Usage:
    u = getattr(completion, "usage", None)
    if u is None:
        return Usage()
    return Usage(int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))


def parse_completion(completion: Any) -> Reply:
    """A Reply from an openai ChatCompletion; MalformedReply (carrying usage) otherwise."""
    usage = _usage_of(completion)
    choices = getattr(completion, "choices", None) or []
    if not choices or getattr(choices[0], "message", None) is None:
        raise MalformedReply("the endpoint returned no message", usage)
    msg = choices[0].message
    calls = []
    for i, tc in enumerate(getattr(msg, "tool_calls", None) or []):
        fn = getattr(tc, "function", None)
        name = getattr(fn, "name", None)
        args = getattr(fn, "arguments", None)
        # Kept as written: the loop tells the model what was wrong with it.
        if isinstance(args, dict):  # some servers send the object itself rather than its JSON text
            args = json.dumps(args)
        calls.append(ToolCall(id=str(getattr(tc, "id", None) or f"call_{i}"), name=str(name or ""),
                              arguments=args if isinstance(args, str) else ("" if args is None else str(args))))
    content = msg.content if isinstance(getattr(msg, "content", None), str) else None
    return Reply(content=content, tool_calls=calls, usage=usage, finish_reason=choices[0].finish_reason)


def is_transient(exc: BaseException) -> bool:
    """Only rate limits, server errors and timeouts are worth another try."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


class OpenAIClient:
    """Chat completions with tools on any OpenAI-compatible endpoint."""

    def __init__(self, settings: LLMSettings, sleep=time.sleep):
        import openai

        if not settings.base_url:
            raise LLMError("no LLM endpoint configured (ONBOARD_LLM_BASE_URL)")
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else PLACEHOLDER_KEY
        # Retries are ours (tenacity, transient errors only), so the client's are off.
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=key, max_retries=0,
                                     timeout=settings.request_timeout_s)
        self._sleep = sleep

    def describe(self) -> dict:
        s = self.settings
        return {"kind": "openai-compatible", "base_url": s.base_url, "model": s.model,
                "temperature": s.temperature, "retries": s.retries}

    def complete(self, messages: list[dict], tools: list[dict], timeout_s: float) -> Reply:
        import openai
        from tenacity import (RetryError, Retrying, retry_if_exception, stop_after_attempt,
                              stop_after_delay, wait_exponential)

        s = self.settings
        retries = 0

        def count(state) -> None:
            nonlocal retries
            retries += 1

        deadline = time.monotonic() + timeout_s
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=s.backoff_initial_s, max=s.backoff_max_s),
            stop=stop_after_attempt(s.retries + 1) | stop_after_delay(timeout_s),
            sleep=self._sleep, before_sleep=count, reraise=False)
        try:
            for attempt in retrying:
                with attempt:
                    left = max(0.05, deadline - time.monotonic())
                    completion = self._client.chat.completions.create(
                        model=s.model, messages=messages, tools=tools or openai.omit,
                        temperature=s.temperature, timeout=min(s.request_timeout_s, left))
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise LLMError(f"gave up after {retries + 1} attempts: {_describe_error(last)}") from last
        except openai.OpenAIError as exc:
            raise LLMError(_describe_error(exc)) from exc
        reply = parse_completion(completion)
        reply.retries = retries
        return reply


def _describe_error(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {text}"
