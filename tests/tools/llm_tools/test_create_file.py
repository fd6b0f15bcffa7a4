from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.create_file import TOOL


def test_create_then_idempotent_then_refuse_overwrite(tmp_path):
    ctx = ToolContext(workspace=tmp_path)
    assert TOOL.run({"path": "pkg/new.py", "content": "X = 1\n"}, ctx) == "created pkg/new.py (1 line)"
    assert (tmp_path / "pkg" / "new.py").read_text() == "X = 1\n"
    assert oct((tmp_path / "pkg" / "new.py").stat().st_mode & 0o777) == "0o644"
    assert TOOL.run({"path": "pkg/new.py", "content": "X = 1\n"}, ctx).startswith("already applied")
    with pytest.raises(ToolRefused, match="with str_replace"):
        TOOL.run({"path": "pkg/new.py", "content": "X = 2\n"}, ctx)


def test_unparseable_python_is_not_written(tmp_path):
    ctx = ToolContext(workspace=tmp_path)
    with pytest.raises(ToolRefused, match="would not parse"):
        TOOL.run({"path": "bad.py", "content": "def (:\n"}, ctx)
    assert not (tmp_path / "bad.py").exists()
