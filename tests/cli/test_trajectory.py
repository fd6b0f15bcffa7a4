"""`onboard trajectory THREAD` on a recorded trajectory."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agent.cli.main import app


def test_trajectory_command_shows_rounds_and_usage(tmp_path):
    job = tmp_path / "jobs" / "t-1"
    job.mkdir(parents=True)
    (job / "trajectory.json").write_text(json.dumps({
        "model_type": "minimoe", "target": "moe-mini", "exit_status": "submitted", "format_errors": 1,
        "settings": {"model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key": "***"},
        "usage": {"steps": 2, "total_tokens": 300, "prompt_tokens": 250, "completion_tokens": 50, "cost_usd": 0,
                  "elapsed_s": 1.5},
        "rounds": [{"round": 0, "kind": "implement", "candidate": "llm:llama#0", "status": "submitted",
                    "message": "the model called finish", "summary": "vectorised",
                    "steps": [{"step": 1, "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                               "tool_calls": [{"name": "read_file", "arguments": '{"path": "moe.py"}',
                                               "observation": "moe.py lines 1-3"}]},
                              {"step": 2, "usage": {"prompt_tokens": 150, "completion_tokens": 30},
                               "format_error": "it contained no tool call", "tool_calls": []}]}]}))
    result = CliRunner().invoke(app, ["trajectory", "t-1", "--data-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "exit: submitted" in result.output and "tokens 300" in result.output
    assert "read_file" in result.output and "no tool call" in result.output and "vectorised" in result.output
    result = CliRunner().invoke(app, ["trajectory", "t-1", "--data-dir", str(tmp_path), "--json"])
    assert json.loads(result.output)["usage"]["steps"] == 2


def test_trajectory_of_unknown_thread_is_a_user_error(tmp_path):
    result = CliRunner().invoke(app, ["trajectory", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no trajectory" in result.output
