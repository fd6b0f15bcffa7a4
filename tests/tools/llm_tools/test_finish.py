from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.finish import TOOL


def test_finish_records_the_summary(tmp_path):
    ctx = ToolContext(workspace=tmp_path)
    with pytest.raises(ToolRefused):
        TOOL.run({"summary": "  "}, ctx)
    assert ctx.finished is None
    assert TOOL.run({"summary": "vectorised the MoE"}, ctx).startswith("submitted")
    assert ctx.finished == "vectorised the MoE"
