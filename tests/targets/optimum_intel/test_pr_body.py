"""The optimum-intel PR body lets a reviewer reproduce from a clone of the PR branch, with no host path."""

from __future__ import annotations

from types import SimpleNamespace

from prompts import render
from tests.targets.optimum_intel.test_patch import spec
from tests.targets.optimum_intel.test_pr_merge import upstream  # noqa: F401 (fixture)
from tools.targets.base import Check, VerifyReport
from tools.targets.optimum_intel import fixture
from tools.targets.optimum_intel.patch import write_patch
from tools.targets.optimum_intel.target import OptimumIntelTarget, _commit_shared

NODE = "tests/openvino/test_decoder.py::OVModelForCausalLMIntegrationTest::test_compare_to_transformers_39_cwm"


def test_body_names_the_hub_id_the_builder_and_the_exact_tests(upstream, tmp_path):  # noqa: F811
    ws, base = upstream
    write_patch(ws, spec("cwm"))
    _commit_shared(ws)
    target = OptimumIntelTarget(tmp_path / "cache")
    target._versions["cwm"] = ("5.0.0", "first transformers release on the package index that ships the model")
    report = VerifyReport.from_checks([
        Check(name="export", status="passed", detail="text-generation-with-past, stateful: 2 SDPA ops"),
        Check(name="logits_parity", status="passed", stage="compare", detail="max |Δlogits| 2.4e-07"),
        Check(name="tests:tests/openvino/test_decoder.py", status="passed", stage="tests", detail="1 passed",
              metrics={"passed_ids": [NODE]})])
    meta = target.pr_meta({"model_type": "cwm"}, SimpleNamespace(), ws, report)
    body = render("templates/pr_body.md.j2", display_name="CWM", model_type="cwm", target="optimum-intel",
                  candidate=SimpleNamespace(params={"base_class": "LlamaOpenVINOConfig"}, why="lineage", patterns=[]),
                  situation="S1", kind="dense", features=[], min_version=meta.min_version,
                  min_version_source=meta.min_version_source, base_rev=base, workspace_note="a local checkout",
                  tiny={"num_params": 1000, "layers": 2, "window": 8}, tolerance=1e-4,
                  checks=[c.model_dump() for c in report.checks], attempts=[], files=["a.py"], notes=[], remote="",
                  branch="onboard/optimum-intel/cwm", test_commands=meta.reproduce, thread_id="t-1", timings={},
                  references=[], llm=None, score=None, score_label="", facts=meta.facts)
    for host in (str(tmp_path), "/tmp/", "/root", str(ws)):
        assert host not in body, host
    shared = meta.facts["shared_commit"]
    assert shared and f"`{shared[:12]}`" in body and "Onboarder-Shared" not in body
    assert "`org/tiny-random-cwm` in `HUB_MODEL_NAMES`" in body and fixture.config_path("cwm") in body
    assert "git checkout onboard/optimum-intel/cwm\n" in body
    assert f"python {fixture.HELPER} cwm --output tiny-random-cwm\n" in body
    assert f'pytest "{NODE}"\n' in body
    assert "| logits_parity | ✅ passed | max |Δlogits| 2.4e-07 |" in body.replace("\\|", "|")
