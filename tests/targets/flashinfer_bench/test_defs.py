"""New Definitions for missing names: derived from a sibling, from an own template, or refused;
what is made must pass the in-sandbox job's checks."""

from __future__ import annotations

import json
from pathlib import Path

from tools.targets.flashinfer_bench import defs
from sandboxes.targets.flashinfer_bench import verify as job
from tests import TESTS

REPO = TESTS / "fixtures" / "flashinfer_bench" / "repo"
DEFS = REPO / "flashinfer_trace" / "definitions"


def dataset() -> dict:
    return {p.stem: json.loads(p.read_text()) for p in DEFS.rglob("*.json")}


def test_derive_from_sibling_sets_consts_and_asserts():
    d, how = defs.derive("gqa_ragged_prefill_causal_h8_kv1_d32", dataset(), "toy-2b", {"tp": 2, "ep": 1})
    assert how == "derived from gqa_ragged_prefill_causal_h4_kv2_d16"
    assert {k: v["value"] for k, v in d["axes"].items() if v["type"] == "const"} == \
        {"num_qo_heads": 8, "num_kv_heads": 1, "head_dim": 32}
    assert "assert num_qo_heads == 8" in d["reference"] and "assert head_dim == 32" in d["reference"]
    assert "model:toy-2b" in d["tags"] and "tp:2" in d["tags"] and "status:unverified" in d["tags"]
    assert d["name"] == "gqa_ragged_prefill_causal_h8_kv1_d32"


def test_no_template_is_reported_not_invented():
    d, why = defs.derive("mla_paged_decode_h16_ckv512_kpe64_ps1", dataset(), "x", {"tp": 1, "ep": 1})
    assert d is None and "mla_paged" in why
    d, why = defs.derive("lightning_attn_h8", dataset(), "x", {"tp": 1, "ep": 1})
    assert d is None and "no known op family" in why


def test_derived_and_own_templates_run_and_validate(tmp_path):
    made = [defs.derive(n, dataset(), "toy-2b", {"tp": 1, "ep": 1})[0]
            for n in ("gqa_ragged_prefill_causal_h8_kv1_d32", "fused_add_rmsnorm_h96", "gemm_n48_k32", "rmsnorm_h80")]
    checks = [c for d in made for c in job.check_definition(d, str(tmp_path))]
    ref = [c for c in checks if c["name"].startswith("reference:")]
    assert [c["status"] for c in ref] == ["passed"] * 4, ref
    # no flashinfer_bench in the venv or the (empty) workspace: the schema check says so, never passes
    schema = {c["status"] for c in checks if c["name"].startswith("schema:")}
    assert schema <= {"passed", "skipped"}


def test_sibling_with_an_unrecognised_constant_fails_its_run():
    data = dataset()
    sib = data["rmsnorm_h64"]
    sib["reference"] = sib["reference"].replace("assert hidden_size == 64", "assert hidden_states.shape[-1] == 64")
    d, how = defs.derive("rmsnorm_h80", {"rmsnorm_h64": sib}, "x", {"tp": 1, "ep": 1})
    assert how == "derived from rmsnorm_h64"
    (check,) = [c for c in job.check_definition(d) if c["name"].startswith("reference:")]
    assert check["status"] == "failed" and "AssertionError" in check["detail"]
