from __future__ import annotations

import pytest

from tools.llm_tools.base import ToolContext, ToolRefused
from tools.llm_tools.run_verification import TOOL

REPORT = {"passed": False, "first_failure": "logits_parity: max |Δlogits| 0.4",
          "checks": [{"name": "export", "status": "passed", "detail": "ir", "metrics": {}},
                     {"name": "logits_parity", "status": "failed", "detail": "max |Δlogits| 0.4 " + "x" * 2000,
                      "metrics": {"first_divergence": {"prompt": 0, "position": 3}}}]}


def test_report_is_compact_and_names_the_first_failure(tmp_path):
    calls = []
    ctx = ToolContext(workspace=tmp_path, verify=lambda: calls.append(1) or REPORT)
    out = TOOL.run({}, ctx)
    assert calls == [1]
    assert out.splitlines()[:3] == ["verification FAILED", "first failure: logits_parity: max |Δlogits| 0.4",
                                    "- export: passed — ir"]
    assert "first divergence: {'prompt': 0, 'position': 3}" in out and len(out) < 1000


def test_unavailable_without_a_verifier(tmp_path):
    with pytest.raises(ToolRefused):
        TOOL.run({}, ToolContext(workspace=tmp_path))
