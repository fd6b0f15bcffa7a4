"""Status assignment from the states the graph leaves behind (shapes as agent/nodes write them)."""

from __future__ import annotations

import pytest

from agent.nightly.status import STATUSES, Row, from_state, skipped, timeout


def attempt(cand: str, passed: bool = False, diff: float | None = None, failure: str = "", div=None,
            stage: str | None = None) -> dict:
    if stage is None and not passed:
        stage = "compare" if diff is not None else "build"
    return {"candidate": cand, "passed": passed, "first_failure": failure, "score": diff,
            "score_label": "max |Δlogits|", "failed_stage": stage, "divergence": div,
            "report": "/r.json", "diff": "/d.diff"}


def state(situation: str = "S1", attempts=(), outcome: str | None = None, **extra) -> dict:
    return {"thread_id": "t-1", "plan": {"situation": situation}, "analysis": {"kind": "dense"},
            "attempts": list(attempts), "timings": {"tiny": 1.5, "verify[0]": 12.0},
            **({"outcome": outcome} if outcome else {}), **extra}


def test_pr_names_the_passing_base_and_its_parity():
    s = state(attempts=[attempt("alias:llama", diff=0.5, failure="logits_parity: x"),
                        attempt("alias:qwen2", passed=True, diff=2e-7)],
              outcome="pr", pr={"url": "file:///r.git#b", "json_path": "/prs/t/m.json"}, message="ok")
    row = from_state("m", s, llm_configured=False)
    assert (row.status, row.base, row.score, row.pr_path) == ("pr", "qwen2", 2e-7, "/prs/t/m.json")
    assert row.stages == {"tiny": 1.5, "verify[0]": 12.0} and row.situation == "S1"


def test_s1_divergence_is_compare_failed_with_best_candidate():
    s = state(attempts=[attempt("alias:llama", diff=0.57, failure="logits_parity: max 0.57",
                                div={"prompt": 1, "position": 3}),
                        attempt("alias:qwen2", failure="export: KeyError 'x'"),
                        attempt("alias:mistral", diff=0.2, failure="logits_parity: max 0.2")],
              outcome="needs_llm")
    row = from_state("m", s, llm_configured=False)
    assert row.status == "compare_failed" and row.base == "mistral" and row.score == 0.2
    assert "0.2" in row.detail


def test_s1_build_failure_carries_the_first_actionable_error():
    s = state(attempts=[attempt("alias:llama", failure="export: ValueError: rope type yarn")], outcome="refused")
    row = from_state("m", s, llm_configured=False)
    assert row.status == "build_failed" and "rope type yarn" in row.detail and row.score is None


@pytest.mark.parametrize("situation", ["S2", "S3"])
def test_s2_s3_without_endpoint_need_the_llm(situation):
    s = state(situation, attempts=[attempt("alias:llama", diff=0.3, failure="logits_parity: 0.3")],
              outcome="needs_llm")
    row = from_state("m", s, llm_configured=False)
    assert row.status == "needs_llm" and row.base == "llama" and situation in row.detail


def test_s2_with_an_endpoint_is_judged_by_its_checks():
    s = state("S2", attempts=[attempt("alias:llama", diff=0.3, failure="logits_parity: 0.3")], outcome="needs_llm")
    assert from_state("m", s, llm_configured=True).status == "compare_failed"


def test_crashes_map_to_the_stage_that_failed():
    early = from_state("m", {}, llm_configured=False, error={"node": "tiny", "message": "TinyModelError: boom"})
    assert early.status == "tiny_failed" and early.detail.startswith("tiny: TinyModelError")
    prep = from_state("m", {}, llm_configured=False, error={"node": "prepare", "message": "cannot build config"})
    assert prep.status == "tiny_failed"
    late = from_state("m", state(), llm_configured=False, error={"node": "verify", "message": "OSError"})
    assert late.status == "build_failed"


def test_already_supported_and_no_candidates():
    assert from_state("m", state(outcome="already_supported"), llm_configured=False).status == "skipped"
    none = from_state("m", state("S1", outcome="refused", message="no candidate could be tried"),
                      llm_configured=True)
    assert none.status == "needs_llm" and "no candidate" in none.detail


def test_closed_set():
    assert timeout("m", 240, "verify").status == "timeout"
    assert "240 s" in timeout("m", 240, "verify").detail
    assert skipped("m", "why").detail == "why"
    with pytest.raises(ValueError):
        Row(model_type="m", status="error")
    assert len(STATUSES) == 8


def test_tokens_come_from_the_llm_usage():
    s = state("S2", attempts=[attempt("llm:llama#0", diff=0.3, failure="logits_parity: 0.3")], outcome="refused",
              llm={"usage": {"total_tokens": 1234}, "status": "submitted"})
    row = from_state("m", s, llm_configured=True)
    assert row.tokens == 1234 and row.status == "compare_failed"


def test_tiny_failure_outcome_is_tiny_failed():
    row = from_state("musicgen", {"outcome": "tiny_failed", "message": "no tiny model to verify against: x"},
                     llm_configured=False)
    assert row.status == "tiny_failed" and "no tiny model" in row.detail


def test_a_candidate_refused_by_the_repository_tests_is_tests_failed():
    s = state(attempts=[attempt("alias:llama", diff=2e-7, failure="tests:test_decoder.py: 1 failed", stage="tests")],
              outcome="refused")
    row = from_state("m", s, llm_configured=False)
    assert row.status == "tests_failed" and row.score == 2e-7 and "test_decoder" in row.detail


def test_statuses_stored_by_earlier_versions_read_as_their_stage():
    assert Row(model_type="m", status="parity_failed").status == "compare_failed"
    assert Row(model_type="m", status="export_failed").status == "build_failed"
