"""The tool loop against a scripted endpoint: format errors, budgets, timeouts, endpoint failures."""

from __future__ import annotations

import json

import pytest

from agent.llm.loop import ToolLoop
from agent.llm.client import Budget, OpenAIClient
from agent.llm.settings import LLMSettings
from agent.llm.redact import Redactor
from agent.llm.trajectory import Trajectory
from tests.fakes.openai_server import Fail, FakeOpenAI, Raw, Say, call
from tools.llm_tools import TOOLS, ToolContext


def loop_for(server, tmp_path, **limits) -> ToolLoop:
    s = LLMSettings(base_url=server.url, backoff_initial_s=0.01, backoff_max_s=0.02,
                    request_timeout_s=limits.pop("request_timeout_s", 5.0), retries=limits.pop("retries", 2))
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "a.py").write_text("A = 1\n")
    traj = Trajectory(tmp_path / "trajectory.json", Redactor(environ={}))
    traj.messages.extend([{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}])
    traj.start_round("implement", "llm:x#0")
    budget = Budget(max_steps=limits.get("max_steps", 20), max_tokens=limits.get("max_tokens", 10**6),
                    max_cost_usd=1.0, max_wall_s=limits.get("max_wall_s", 60))
    return ToolLoop(OpenAIClient(s), TOOLS, ToolContext(workspace=ws), budget, traj, Redactor(environ={}),
                    max_format_errors=limits.get("max_format_errors", 3))


def test_malformed_tool_call_is_fed_back_and_counted(tmp_path):
    script = [Say(calls=[("read_file", '{"path": "a.py"')], prompt_tokens=50, completion_tokens=5),
              Say(calls=[("no_such_tool", "{}")]),
              Say(calls=[call("finish", summary="ok")])]
    with FakeOpenAI(script) as server:
        loop = loop_for(server, tmp_path)
        result = loop.run()
    assert result.status == "submitted" and result.summary == "ok"
    second = server.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and "not a JSON object" in second[-1]["content"]
    assert "no tool named 'no_such_tool'" in server.requests[2]["messages"][-1]["content"]
    saved = json.loads((tmp_path / "trajectory.json").read_text())
    assert saved["format_errors"] == 2
    assert saved["usage"]["steps"] == 3 and saved["usage"]["prompt_tokens"] == 250  # malformed ones counted


def test_replies_without_tool_calls_end_with_exit_format(tmp_path):
    with FakeOpenAI([Say(content="I think we should...")] * 5) as server:
        result = loop_for(server, tmp_path, max_format_errors=3).run()
    assert result.status == "exit_format" and len(server.requests) == 3
    assert "could not be used: it contained no tool call" in server.requests[1]["messages"][-1]["content"]


def test_unreadable_completion_is_counted_and_survived(tmp_path):
    bad = Raw({"object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 70, "completion_tokens": 1}})
    with FakeOpenAI([bad, Say(calls=[call("finish", summary="ok")], prompt_tokens=30)]) as server:
        loop = loop_for(server, tmp_path)
        result = loop.run()
    assert result.status == "submitted"
    assert loop.budget.usage.prompt_tokens == 100 and loop.budget.steps == 2


def test_rate_limit_then_success_is_one_step(tmp_path):
    with FakeOpenAI([Fail(429), Say(calls=[call("finish", summary="ok")])]) as server:
        loop = loop_for(server, tmp_path)
        result = loop.run()
    assert result.status == "submitted" and len(server.requests) == 2 and loop.budget.steps == 1
    assert loop.traj.current["steps"][0]["retries"] == 1


def test_step_budget(tmp_path):
    with FakeOpenAI([Say(calls=[call("list_dir")])] * 9) as server:
        result = loop_for(server, tmp_path, max_steps=2).run()
    assert result.status == "exit_steps" and len(server.requests) == 2


def test_slow_endpoint_hits_the_wall_time_budget(tmp_path):
    with FakeOpenAI([Say(calls=[call("list_dir")], delay=5)] * 3) as server:
        result = loop_for(server, tmp_path, max_wall_s=1.0, request_timeout_s=30).run()
    assert result.status == "exit_time"


def test_endpoint_refusal_is_exit_error(tmp_path):
    with FakeOpenAI([Fail(401)]) as server:
        result = loop_for(server, tmp_path).run()
    assert result.status == "exit_error" and "HTTP 401" in result.message


def test_exhausted_retries_are_exit_error(tmp_path):
    with FakeOpenAI([Fail(503)] * 5) as server:
        result = loop_for(server, tmp_path, retries=1).run()
    assert result.status == "exit_error" and len(server.requests) == 2


def test_pending_call_is_answered_on_resume_and_finish_is_not_asked_again(tmp_path):
    with FakeOpenAI([]) as server:
        loop = loop_for(server, tmp_path)
        loop.traj.messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "str_replace", "arguments": json.dumps(
                {"path": "a.py", "old_str": "A = 1", "new_str": "A = 2"})}},
            {"id": "c2", "type": "function", "function": {"name": "finish", "arguments": '{"summary": "s"}'}}]})
        loop.traj.messages.append({"role": "tool", "tool_call_id": "c1", "content": "edited a.py"})
        (loop.ctx.workspace / "a.py").write_text("A = 2\n")  # the edit landed before the kill
        result = loop.run()
    assert result.status == "submitted" and result.summary == "s" and server.requests == []
    assert (loop.ctx.workspace / "a.py").read_text() == "A = 2\n"


@pytest.mark.parametrize("status", ["submitted", "exit_cost", "exit_steps", "exit_time", "exit_format",
                                    "exit_error"])
def test_exit_statuses_are_a_closed_set(status):
    from agent.llm.client import EXIT_STATUSES

    assert status in EXIT_STATUSES and len(EXIT_STATUSES) == 6


def test_older_observations_are_shortened_in_what_is_sent_but_kept_in_the_trajectory(tmp_path):
    from agent.llm.loop import KEEP_OBSERVATIONS

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "big.py").write_text("".join(f"line_{i} = {i}\n" for i in range(300)))
    script = [Say(calls=[call("read_file", path="big.py")])] * (KEEP_OBSERVATIONS + 1) + \
        [Say(calls=[call("finish", summary="ok")])]
    with FakeOpenAI(script) as server:
        loop = loop_for(server, tmp_path)
        assert loop.run().status == "submitted"
    sent = [m["content"] for m in server.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(sent) == KEEP_OBSERVATIONS + 1
    assert sent[0].endswith("[older observation shortened]") and len(sent[0]) < 500
    assert all("line_299" in s for s in sent[1:])
    kept = [m["content"] for m in loop.traj.messages if m["role"] == "tool"]
    assert "line_299" in kept[0]


def test_unreachable_endpoint_is_exit_error_without_retries(tmp_path):
    with FakeOpenAI([]) as server:
        loop = loop_for(server, tmp_path)
    result = loop.run()  # the server is gone: connection refused is not a transient error worth retrying
    assert result.status == "exit_error" and "APIConnectionError" in result.message
