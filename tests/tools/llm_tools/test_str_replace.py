"""str_replace: exactly one match, and Aider-style feedback when there is not."""

from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.str_replace import TOOL

SRC = "def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x + 1\n\n\nVALUE = 3   \n"


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "m.py").write_text(SRC)
    return ToolContext(workspace=tmp_path)


def edit(ctx, old, new, path="m.py"):
    return TOOL.run({"path": path, "old_str": old, "new_str": new}, ctx)


def test_unique_match_is_replaced_and_shown(ctx):
    out = edit(ctx, "def g(x):\n    return x + 1", "def g(x):\n    return x * 2")
    assert "edited m.py" in out and "6|     return x * 2" in out
    assert (ctx.workspace / "m.py").read_text() == SRC.replace("return x + 1\n\n\nVALUE", "return x * 2\n\n\nVALUE")


def test_several_matches_name_the_lines_and_change_nothing(ctx):
    with pytest.raises(ToolRefused, match=r"occurs 2 times in m.py \(at lines 2, 6\)"):
        edit(ctx, "    return x + 1", "    return x")
    assert (ctx.workspace / "m.py").read_text() == SRC


def test_already_applied_is_reported(ctx):
    edit(ctx, "VALUE = 3", "VALUE = 4")
    with pytest.raises(ToolRefused, match="already applied.*Do not resend"):
        edit(ctx, "VALUE = 3", "VALUE = 4")


def test_no_match_suggests_the_closest_lines(ctx):
    with pytest.raises(ToolRefused) as info:
        edit(ctx, "def g(y):\n    return y + 1", "pass")
    msg = str(info.value)
    assert "not found" in msg and "did you mean" in msg and "5| def g(x):" in msg
    assert (ctx.workspace / "m.py").read_text() == SRC


def test_trailing_whitespace_is_tolerated(ctx):
    out = edit(ctx, "VALUE = 3\n", "VALUE = 5\n")
    assert "ignoring trailing whitespace" in out
    assert (ctx.workspace / "m.py").read_text().endswith("VALUE = 5\n")


def test_edit_that_breaks_python_is_refused(ctx):
    with pytest.raises(ToolRefused, match="unparseable"):
        edit(ctx, "def f(x):", "def f(x:")
    assert (ctx.workspace / "m.py").read_text() == SRC


def test_non_python_files_are_not_parsed(ctx):
    (ctx.workspace / "doc.md").write_text("- a\n- b\n")
    edit(ctx, "- b\n", "- b\n- c (\n", path="doc.md")
    assert (ctx.workspace / "doc.md").read_text() == "- a\n- b\n- c (\n"


@pytest.mark.parametrize("old,new,msg", [("", "x", "empty"), ("x", "x", "identical"), (None, "x", "strings")])
def test_bad_arguments(ctx, old, new, msg):
    with pytest.raises(ToolRefused, match=msg):
        edit(ctx, old, new)
