from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.view_references import DIFF_CHARS, TOOL


def test_list_then_one_reference_with_bounded_diff(tmp_path):
    diff = tmp_path / "ref.diff"
    diff.write_text("+added line\n" * 5000)
    refs = [{"ref": "abc123", "subject": "Add afmoe", "score": 5, "why": ["moe"], "model_types": ["afmoe"],
             "files": [{"path": "model_configs.py", "status": "M", "kind": "config"}],
             "patterns": {"patcher": "AfmoeModelPatcher"}, "diff_path": str(diff)}]
    ctx = ToolContext(workspace=tmp_path / "ws", references=refs)
    listing = TOOL.run({}, ctx)
    assert "[0] Add afmoe (abc123" in listing and "model_configs.py (config)" in listing
    one = TOOL.run({"index": 0}, ctx)
    assert "AfmoeModelPatcher" in one and "+added line" in one and len(one) < DIFF_CHARS + 2000
    with pytest.raises(ToolRefused, match="from 0 to 0"):
        TOOL.run({"index": 3}, ctx)


def test_no_references(tmp_path):
    assert TOOL.run({}, ToolContext(workspace=tmp_path)).startswith("no reference")
