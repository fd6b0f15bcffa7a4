from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.grep import MAX_MATCHES, TOOL


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "a.py").write_text("class FooConfig:\n    pass\n")
    (tmp_path / "b.md").write_text("FooConfig in docs\n")
    (tmp_path / "many.py").write_text("hit\n" * (MAX_MATCHES + 20))
    return ToolContext(workspace=tmp_path)


def test_matches_with_paths_and_lines(ctx):
    assert TOOL.run({"pattern": r"class \w+Config"}, ctx) == "a.py:1: class FooConfig:"
    assert TOOL.run({"pattern": "FooConfig", "glob": "*.md"}, ctx) == "b.md:1: FooConfig in docs"


def test_many_matches_are_capped(ctx):
    out = TOOL.run({"pattern": "^hit$"}, ctx)
    assert out.count("many.py:") == MAX_MATCHES and "narrow `path` or `glob`" in out


def test_no_match_and_bad_regex(ctx):
    assert TOOL.run({"pattern": "absent"}, ctx).startswith("no match")
    with pytest.raises(ToolRefused, match="escape"):
        TOOL.run({"pattern": "foo("}, ctx)
