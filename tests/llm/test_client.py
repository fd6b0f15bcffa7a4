"""The OpenAI client against a scripted server: retries, timeouts, malformed replies, usage."""

from __future__ import annotations

import time

import pytest

from agent.llm.client import Budget, LLMError, MalformedReply, OpenAIClient, Usage, parse_completion
from agent.llm.settings import LLMSettings, Price
from tests.fakes.openai_server import Fail, FakeOpenAI, Raw, Say, call

TOOLS = [{"type": "function", "function": {"name": "finish", "description": "d",
                                           "parameters": {"type": "object", "properties": {}}}}]
MSGS = [{"role": "user", "content": "hi"}]


def client(url: str, **kw) -> OpenAIClient:
    s = LLMSettings(base_url=url, api_key="sk-test-secret-123", backoff_initial_s=0.01, backoff_max_s=0.02,
                    request_timeout_s=kw.pop("request_timeout_s", 5.0), **kw)
    return OpenAIClient(s)


def test_tool_call_parsed_with_usage_and_key_sent():
    with FakeOpenAI([Say(calls=[call("finish", summary="done")], prompt_tokens=11, completion_tokens=7)]) as srv:
        reply = client(srv.url).complete(MSGS, TOOLS, timeout_s=5)
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("finish", '{"summary": "done"}')]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.retries) == (11, 7, 0)
    assert srv.requests[0]["tools"] == TOOLS and srv.requests[0]["temperature"] == 0.0
    assert srv.headers[0]["authorization"] == "Bearer sk-test-secret-123"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_status_is_retried(status):
    with FakeOpenAI([Fail(status), Say(content="ok")]) as srv:
        reply = client(srv.url).complete(MSGS, TOOLS, timeout_s=5)
    assert reply.content == "ok" and reply.retries == 1 and len(srv.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(status):
    with FakeOpenAI([Fail(status), Say(content="never")]) as srv:
        with pytest.raises(LLMError, match=f"HTTP {status}"):
            client(srv.url).complete(MSGS, TOOLS, timeout_s=5)
    assert len(srv.requests) == 1


def test_retries_are_bounded():
    with FakeOpenAI([Fail(429)] * 10) as srv:
        with pytest.raises(LLMError, match="gave up after 3 attempts"):
            client(srv.url, retries=2).complete(MSGS, TOOLS, timeout_s=5)
    assert len(srv.requests) == 3


def test_timeout_is_retried_then_succeeds():
    with FakeOpenAI([Say(content="slow", delay=1.5), Say(content="fast")]) as srv:
        t = time.monotonic()
        reply = client(srv.url, request_timeout_s=0.5).complete(MSGS, TOOLS, timeout_s=10)
    assert reply.content == "fast" and reply.retries == 1
    assert time.monotonic() - t < 1.5


def test_call_timeout_is_bounded_by_the_remaining_wall_time():
    with FakeOpenAI([Say(content="slow", delay=3)] * 5) as srv:
        t = time.monotonic()
        with pytest.raises(LLMError):
            client(srv.url, request_timeout_s=60).complete(MSGS, TOOLS, timeout_s=1.0)
    assert time.monotonic() - t < 2.9


def test_malformed_body_raises_with_usage():
    body = {"id": "x", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 9,
                                                                             "completion_tokens": 3}}
    with FakeOpenAI([Raw(body)]) as srv:
        with pytest.raises(MalformedReply) as info:
            client(srv.url).complete(MSGS, TOOLS, timeout_s=5)
    assert info.value.usage.total == 12


def test_malformed_arguments_are_kept_verbatim_for_the_loop():
    with FakeOpenAI([Say(calls=[("read_file", '{"path": "a.py"')])]) as srv:
        reply = client(srv.url).complete(MSGS, TOOLS, timeout_s=5)
    assert reply.tool_calls[0].arguments == '{"path": "a.py"'


def test_no_endpoint_is_an_error():
    with pytest.raises(LLMError, match="ONBOARD_LLM_BASE_URL"):
        OpenAIClient(LLMSettings(base_url=None))


def test_budget_checked_before_calls_and_priced():
    b = Budget(max_steps=3, max_tokens=1000, max_cost_usd=0.01, max_wall_s=100,
               price=Price(input=1000.0, output=2000.0))
    assert b.exhausted() is None
    b.record(Usage(4, 2))  # 4*1000/1e6 + 2*2000/1e6 = 0.008
    assert b.exhausted() is None and b.cost_usd == pytest.approx(0.008)
    b.record(Usage(2, 0))
    assert b.exhausted()[0] == "exit_cost"
    b2 = Budget(max_steps=1, max_tokens=10**6, max_cost_usd=10, max_wall_s=100)
    b2.record(Usage(1, 1))
    assert b2.exhausted()[0] == "exit_steps"
    b3 = Budget(max_steps=9, max_tokens=10, max_cost_usd=10, max_wall_s=100)
    b3.record(Usage(10, 0))
    assert b3.exhausted()[0] == "exit_cost"
    b4 = Budget(max_steps=9, max_tokens=10, max_cost_usd=10, max_wall_s=5)
    b4.restore({"elapsed_s": 6, "steps": 2, "prompt_tokens": 1})
    assert b4.exhausted()[0] == "exit_time" and b4.steps == 2


def test_parse_completion_tolerates_missing_usage():
    class M:
        content, tool_calls = "x", None

    class C:
        message, finish_reason = M(), "stop"

    class Completion:
        choices, usage = [C()], None

    assert parse_completion(Completion()).usage.total == 0


def test_arguments_sent_as_an_object_are_turned_into_json():
    from types import SimpleNamespace as NS

    tc = NS(id="c1", function=NS(name="read_file", arguments={"path": "a.py"}))
    completion = NS(choices=[NS(message=NS(content=None, tool_calls=[tc]), finish_reason="tool_calls")], usage=None)
    assert parse_completion(completion).tool_calls[0].arguments == '{"path": "a.py"}'
