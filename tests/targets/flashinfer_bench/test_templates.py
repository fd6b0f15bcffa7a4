"""Our own Definition templates compute what the upstream references compute, on the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.targets.flashinfer_bench import defs
from sandboxes.targets.flashinfer_bench import verify as job
from tests import TESTS

SHARED = TESTS / "data" / "flashinfer_bench" / "definitions"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real upstream Definitions not present at {SHARED}")
@pytest.mark.parametrize("rel", ["rmsnorm/rmsnorm_h4096", "rmsnorm/fused_add_rmsnorm_h4096", "gemm/gemm_n4096_k4096",
                                 "gqa_ragged/gqa_ragged_prefill_causal_h32_kv8_d128",
                                 "gqa_paged/gqa_paged_decode_h32_kv8_d128_ps1",
                                 "gqa_paged/gqa_paged_prefill_causal_h32_kv8_d128_ps1"])
def test_own_templates_match_upstream_references(rel):
    import torch

    upstream = json.loads((SHARED / f"{rel}.json").read_text())
    mine, how = defs.derive(upstream["name"], {}, "x", {"tp": 1, "ep": 1})
    assert how.startswith("own ") and list(mine["inputs"]) == list(upstream["inputs"])
    assert {k: v["shape"] for k, v in mine["outputs"].items()} == {k: v["shape"] for k, v in upstream["outputs"].items()}
    torch.manual_seed(0)
    inputs, _ = job._inputs(upstream, torch)
    results = []
    for d in (upstream, mine):
        scope: dict = {}
        exec(d["reference"], scope)  # noqa: S102 - references under test
        out = scope["run"](*[t.clone() for t in inputs])
        results.append(out if isinstance(out, tuple) else (out,))
    for a, b in zip(*results):
        assert torch.equal(a, b)
