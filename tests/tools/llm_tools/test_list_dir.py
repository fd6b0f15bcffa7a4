from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.list_dir import TOOL


def test_lists_dirs_first_and_skips_git(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "deep.py").write_text("")
    (tmp_path / "pkg" / "b.py").write_text("")
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.md").write_text("")
    ctx = ToolContext(workspace=tmp_path)
    assert TOOL.run({}, ctx).splitlines() == ["./", "pkg/", "README.md"]
    assert TOOL.run({"path": "pkg", "depth": 2}, ctx).splitlines() == ["pkg/", "sub/", "  deep.py", "b.py"]
    with pytest.raises(ToolRefused, match="depth"):
        TOOL.run({"depth": 9}, ctx)
    with pytest.raises(ToolRefused, match="is a file"):
        TOOL.run({"path": "README.md"}, ctx)
