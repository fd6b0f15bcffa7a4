"""Path confinement and bounded output, shared by every LLM tool."""

from __future__ import annotations

import os

import pytest

from tools.llm_tools import TOOLS
from tools.llm_tools.base import ToolContext, ToolRefused, bound, confine


@pytest.fixture
def ctx(tmp_path):
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg" / "a.py").write_text("x = 1\n")
    (ws / ".git").write_text("gitdir: /elsewhere\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    os.symlink(tmp_path / "outside.txt", ws / "link.txt")
    return ToolContext(workspace=ws)


@pytest.mark.parametrize("path", ["../outside.txt", "pkg/../../outside.txt", "~/.bashrc", "$HOME/.bashrc",
                                  "/etc/passwd", "link.txt", ".git", "pkg/../.git"])
def test_paths_outside_the_workspace_are_refused(ctx, path):
    with pytest.raises(ToolRefused) as info:
        confine(ctx, path, must_exist=False)
    assert "workspace" in str(info.value) or ".git" in str(info.value) or "expansion" in str(info.value)


def test_paths_inside_are_resolved(ctx):
    assert confine(ctx, "pkg/a.py") == ctx.workspace / "pkg" / "a.py"
    assert confine(ctx, str(ctx.workspace / "pkg" / "a.py")) == ctx.workspace / "pkg" / "a.py"
    with pytest.raises(ToolRefused, match="does not exist"):
        confine(ctx, "pkg/missing.py")


@pytest.mark.parametrize("name,args", [
    ("read_file", {"path": "../outside.txt"}), ("list_dir", {"path": ".."}),
    ("grep", {"pattern": "secret", "path": "/"}), ("str_replace", {"path": "link.txt", "old_str": "secret",
                                                                   "new_str": "x"}),
    ("create_file", {"path": "../new.txt", "content": "x"}), ("create_file", {"path": "~/.bashrc", "content": "x"})])
def test_every_file_tool_is_confined(ctx, name, args):
    with pytest.raises(ToolRefused):
        TOOLS[name].run(args, ctx)
    assert (ctx.workspace.parent / "outside.txt").read_text() == "secret\n"
    assert not (ctx.workspace.parent / "new.txt").exists()


def test_bound_keeps_head_and_tail():
    text = "a" * 50 + "b" * 50
    out = bound(text, 20, "narrow it")
    assert out.startswith("a" * 10) and out.endswith("b" * 10) and "80 characters omitted; narrow it" in out
    assert bound("short", 20) == "short"


def test_tool_specs_are_valid_function_schemas():
    for name, tool in TOOLS.items():
        spec = tool.spec()
        assert spec["type"] == "function" and spec["function"]["name"] == name
        assert spec["function"]["parameters"]["type"] == "object"
    assert set(TOOLS) == {"list_dir", "read_file", "grep", "str_replace", "create_file", "run_verification",
                          "view_references", "finish"}
