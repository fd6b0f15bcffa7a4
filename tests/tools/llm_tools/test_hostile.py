"""LLM tools against a hostile workspace: pipes, devices and patterns that backtrack without end.

Each call runs in a child process with a deadline, so a tool that hangs fails its test instead of the suite.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HUNG_AFTER_S = 30


def call(tool: str, args: dict, workspace: Path) -> tuple[str, str, float]:
    """(kind, text, seconds): kind is "ok" or "refused"; fails the test when the tool does not answer."""
    code = f"""
import json, sys
from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.{tool} import TOOL
from tests import TESTS
try:
    print(json.dumps(["ok", TOOL.run({args!r}, ToolContext(workspace=sys.argv[1]))]))
except ToolRefused as exc:
    print(json.dumps(["refused", str(exc)]))
"""
    start = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-c", code, str(workspace)], capture_output=True, text=True,
                             timeout=HUNG_AFTER_S, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{tool}({args}) hung for {HUNG_AFTER_S} s")
    assert res.returncode == 0, res.stderr[-2000:]
    kind, text = json.loads(res.stdout)
    return kind, text, time.monotonic() - start


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "a.py").write_text("needle = 1\n")
    os.mkfifo(tmp_path / "pipe.py")
    return tmp_path


def test_read_file_refuses_a_named_pipe(workspace):
    kind, text, _ = call("read_file", {"path": "pipe.py"}, workspace)
    assert kind == "refused" and "not a regular file" in text


def test_str_replace_refuses_a_named_pipe(workspace):
    kind, text, _ = call("str_replace", {"path": "pipe.py", "old_str": "a", "new_str": "b"}, workspace)
    assert kind == "refused" and "not a regular file" in text


def test_grep_skips_a_named_pipe_and_still_finds_the_rest(workspace):
    kind, text, _ = call("grep", {"pattern": "needle"}, workspace)
    assert kind == "ok" and text == "a.py:1: needle = 1"
    kind, text, _ = call("grep", {"pattern": "needle", "path": "pipe.py"}, workspace)
    assert kind == "ok" and text.startswith("no match")


def test_a_device_node_is_never_opened(workspace):
    try:
        os.mknod(workspace / "zero.py", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    kind, text, _ = call("read_file", {"path": "zero.py"}, workspace)
    assert kind == "refused" and "not a regular file" in text
    kind, text, _ = call("grep", {"pattern": "x", "path": "zero.py"}, workspace)
    assert kind == "ok" and text.startswith("no match")


def test_grep_stops_a_catastrophic_pattern_at_its_deadline(tmp_path):
    from tools.llm_tools.grep import DEADLINE_S

    (tmp_path / "x.txt").write_text("a" * 60 + "b\n")
    kind, text, took = call("grep", {"pattern": "^(a|aa)+$"}, tmp_path)
    assert kind == "refused" and "took more than" in text
    assert took < DEADLINE_S + 10


def test_grep_keeps_python_regex_syntax(tmp_path):
    (tmp_path / "m.py").write_text("class FooConfig(Base):\n    x: int = 3\n")
    for pattern, line in ((r"class (?P<name>\w+)Config\(", 1), (r"(?<=x: )int\b", 2), (r"\d+$", 2)):
        kind, text, _ = call("grep", {"pattern": pattern}, tmp_path)
        assert kind == "ok" and text.startswith(f"m.py:{line}:"), (pattern, text)
