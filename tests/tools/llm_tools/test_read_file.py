from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.read_file import TOOL


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "m.py").write_text("".join(f"line {i}\n" for i in range(1, 501)))
    (tmp_path / "bin.dat").write_bytes(b"\0\1\2")
    return ToolContext(workspace=tmp_path, output_chars=100_000)


def test_range_is_numbered(ctx):
    out = TOOL.run({"path": "m.py", "start_line": 10, "end_line": 12}, ctx)
    assert out.splitlines() == ["m.py lines 10-12 of 500", "10| line 10", "11| line 11", "12| line 12",
                                "[more below: read from line 13]"]


def test_default_span_and_end_clamped(ctx):
    out = TOOL.run({"path": "m.py"}, ctx)
    assert "lines 1-300 of 500" in out and "read from line 301" in out
    out = TOOL.run({"path": "m.py", "start_line": 490, "end_line": 900}, ctx)
    assert "lines 490-500 of 500" in out and "more below" not in out


def test_output_is_bounded(ctx):
    ctx.output_chars = 200
    out = TOOL.run({"path": "m.py"}, ctx)
    assert len(out) < 300 and "narrower line range" in out


@pytest.mark.parametrize("args,msg", [({"path": "m.py", "start_line": 0}, "positive"),
                                      ({"path": "m.py", "start_line": 9, "end_line": 3}, "before"),
                                      ({"path": "m.py", "start_line": 900}, "past the end"),
                                      ({"path": "bin.dat"}, "binary"), ({"path": "."}, "directory")])
def test_bad_requests_say_what_to_do(ctx, args, msg):
    with pytest.raises(ToolRefused, match=msg):
        TOOL.run(args, ctx)
