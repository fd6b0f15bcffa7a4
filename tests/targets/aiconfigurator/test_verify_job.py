"""The in-sandbox job's parts that need no aiconfigurator: output parsing and failing closed."""

from __future__ import annotations

import json
import subprocess
import sys

from sandboxes.targets.aiconfigurator import verify
from tools.targets.aiconfigurator.checks import DESELECT, job_spec
from tests.targets.aiconfigurator.helpers import analysis_of

ESTIMATE_OUT = """
  TP Size:          2
------------------------------------------------------------
  TTFT:             91.183 ms
  TPOT:             8.030 ms
  Request Latency:  2139.0 ms
"""


def test_latencies_are_read_from_the_estimate_table():
    assert dict(verify.LATENCY.findall(ESTIMATE_OUT)) == {"TTFT": "91.183", "TPOT": "8.030"}
    assert verify.LATENCY.findall("Request Latency:  2139.0 ms") == []


def test_without_aiconfigurator_the_job_reports_a_failed_environment_not_a_pass(tmp_path):
    spec = {**job_spec(analysis_of("Qwen--Qwen3-30B-A3B_config.json"), "Qwen3MoeForCausalLM", False),
            "workspace": str(tmp_path / "ws"), "out_dir": str(tmp_path)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, verify.__file__, str(tmp_path / "spec.json")], capture_output=True,
                          text=True, timeout=60)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("environment", "failed")]


def test_spec_asks_moe_parallelism_only_for_moe_models_and_lists_deselections_with_reasons():
    moe = job_spec(analysis_of("Qwen--Qwen3-30B-A3B_config.json"), "Qwen3MoeForCausalLM", True)
    dense = job_spec(analysis_of("XiaomiMiMo--MiMo-7B-Base_config.json"), "MiMoForCausalLM", True)
    assert "--moe-ep-size" in moe["estimate_args"] and "--moe-ep-size" not in dense["estimate_args"]
    assert moe["is_moe"] and not dense["is_moe"] and moe["database_modes"] == ["HYBRID", "SOL"]
    assert len(DESELECT) == 13 and all(reason for reason in DESELECT.values())
    assert moe["expected"] == {"layers": 48, "hidden_size": 2048, "n": 32, "n_kv": 4, "d": 128,
                               "num_experts": 128, "topk": 8}
