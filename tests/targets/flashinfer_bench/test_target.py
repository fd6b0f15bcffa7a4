"""The FlashInfer-Bench target on a miniature checkout: apply, plan, verify. The semantic, tsc and dataset
tests are here too: they judge what apply wrote into that git checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.targets.flashinfer_bench import target as fb
from tools.targets.flashinfer_bench import model as fbm
from tools.targets.base import JobContext
from tools.targets.flashinfer_bench.checks import semantic_problems, tsc_check
from tools.targets.flashinfer_bench.dataset import load_dataset
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "flashinfer_bench"
TOY = {"model_type": "toy", "architectures": ["ToyForCausalLM"], "hidden_size": 64, "num_hidden_layers": 3,
       "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 16, "intermediate_size": 96,
       "vocab_size": 1000}


def analysis(raw: dict = TOY) -> dict:
    from tools.hf.config import analyze

    return analyze(raw).model_dump(mode="json")


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES / "repo", tmp_path / "ws")
    git(tmp_path / "ws", "init", "-q")
    git(tmp_path / "ws", "add", "-A")
    git(tmp_path / "ws", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return tmp_path / "ws"


@pytest.fixture
def target(tmp_path) -> fb.FlashInferBenchTarget:
    # TP=2 exercises the head division end to end; page size 64 has neither a sibling nor an own template here
    return fb.FlashInferBenchTarget(tmp_path / "cache", parallel=fbm.Parallel(tp=2, page_sizes=(1, 64)),
                                    sglang=str(FIXTURES / "sglang_models"),
                                    node_modules=str(tmp_path / "no-node-modules"))


def ctx(tmp_path) -> JobContext:
    return JobContext(model_type="toy", tiny_dir=tmp_path, work_dir=tmp_path / "job")


class FakeSandbox:
    """Runs the definitions job in-process-free: a subprocess of this interpreter, like the local backend."""

    name = "local"

    def __init__(self):
        from sandboxes.local import LocalSandbox

        self._inner = LocalSandbox(use_cgroup=False)
        self.python = self._inner.python

    def inside(self, mount):
        return self._inner.inside(mount)

    def run(self, *a, **kw):
        return self._inner.run(*a, **kw)


# -- semantic check: the corruptions the issue names must fail ------------------------------------------


@pytest.fixture
def applied(ws, target, tmp_path):
    a = analysis()
    cand = target.candidates(a, ws, 4)[0]
    applied = target.apply(cand, a, ws, ctx(tmp_path))
    files, notes = applied.files, applied.notes
    return a, cand, files, notes


def test_semantic_accepts_the_generated_entry(ws, target, applied):
    a, cand, _, _ = applied
    known = set(target.dataset(ws)[0]) | {p.stem for p in (ws / fb.DEFS_DIR).rglob("*.json")}
    problems = semantic_problems((ws / fb.MODELS_TS).read_text(), cand.params["id"], a, known)
    # only the page-size-64 attention names lack a template in this dataset; the tree itself is sound
    assert len(problems) == 2 and all("_ps64 " in p for p in problems), problems
    known |= {"gqa_paged_prefill_causal_h4_kv2_d16_ps64", "gqa_paged_decode_h4_kv2_d16_ps64"}
    assert semantic_problems((ws / fb.MODELS_TS).read_text(), cand.params["id"], a, known) == []


@pytest.mark.parametrize("corrupt,expect", [
    (lambda t: t.replace('parent: "self_attn",', 'parent: "self_attention",', 1), "does not exist"),
    (lambda t: 'type: "leaf",'.join(t.rsplit('type: "layer",', 1)), "neither block nor layer"),
    (lambda t: t.replace("      o_proj: {", "      qkv_proj: {", 1), "duplicate key"),
    (lambda t: t.replace("count: 3,", "count: 4,", 2), "!= config 3"),
    (lambda t: t.replace('"gemm_n', '"gemm_n9', 1), "neither in the dataset"),
])
def test_semantic_rejects_corruptions(ws, target, applied, corrupt, expect):
    a, cand, _, _ = applied
    text = corrupt((ws / fb.MODELS_TS).read_text())
    known = set(target.dataset(ws)[0]) | {p.stem for p in (ws / fb.DEFS_DIR).rglob("*.json")}
    problems = semantic_problems(text, cand.params["id"], a, known)
    assert any(expect in p for p in problems), problems


# -- dataset, coverage, plan ----------------------------------------------------------------------------------


def test_dataset_comes_from_the_committed_tree_never_from_this_change(ws, target, applied):
    data, source = load_dataset(ws, None)
    assert set(data) == {"rmsnorm_h64", "gqa_ragged_prefill_causal_h4_kv2_d16"} and "tree" in source
    assert (ws / fb.DEFS_DIR / "gemm").is_dir()  # written by apply, still not "the dataset"


def test_dataset_from_history_when_the_tree_dropped_it(ws):
    shutil.rmtree(ws / "flashinfer_trace")
    git(ws, "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "move dataset to the hub")
    data, source = load_dataset(ws, None)
    assert "rmsnorm_h64" in data and "history" in source
    assert load_dataset(ws, str(FIXTURES / "repo" / fb.DEFS_DIR))[1].startswith("dataset directory")


def test_apply_writes_entry_definitions_and_coverage(ws, applied, tmp_path):
    a, cand, files, notes = applied
    assert files[0] == fb.MODELS_TS and fb.COVERAGE in files
    made = [f for f in files if f.startswith(fb.DEFS_DIR)]
    assert f"{fb.DEFS_DIR}/gqa_ragged/gqa_ragged_prefill_causal_h4_kv2_d16.json" not in made  # exists already
    assert f"{fb.DEFS_DIR}/rmsnorm/fused_add_rmsnorm_h64.json" in made
    cov = (ws / fb.COVERAGE).read_text()
    assert f"| {cand.params['name']} | GQA + Dense | 🟡 Partial |" in cov
    assert cov.index(f"| {cand.params['name']} |") < cov.index("## Toy 1B")  # the row joins the summary table
    assert "top_k_sampling_from_probs_v1000" in cov
    assert (tmp_path / "job" / "summary.md").read_text().startswith(f"# {cand.params['name']}")
    assert f"{fb.DEFS_DIR}/gqa_paged/gqa_paged_decode_h4_kv2_d16_ps1.json" in made  # own template
    # page size 64 has no sibling in this dataset and no own template: an implementer is needed
    assert any("needs an implementer: gqa_paged_prefill_causal_h4_kv2_d16_ps64" in n for n in notes)


def test_plan_reports_situation_and_missing_baseline(ws, target):
    plan = target.plan(analysis(), ws)
    assert plan.situation == "S3" and plan.needs_llm
    missing = target.plan(analysis({**TOY, "architectures": ["NopeForCausalLM"]}), ws)
    assert missing.situation == "S3" and "NopeForCausalLM" in missing.notes[0]
    assert target.candidates(analysis({**TOY, "architectures": ["NopeForCausalLM"]}), ws, 4) == []


# -- verification -------------------------------------------------------------------------------------------


def test_verify_refuses_when_a_template_is_missing(ws, target, applied, tmp_path):
    a, cand, _, _ = applied
    report = target.verify(cand, a, ws, ctx(tmp_path), FakeSandbox(), run_tests=True)
    status = {c.name: c.status for c in report.checks}
    assert not report.passed and status["templates"] == "failed" and status["semantic"] == "failed"
    assert status["tsc"] == "skipped"  # no node_modules: said so, not passed
    assert status["reference:fused_add_rmsnorm_h64"] == "passed"


def test_verify_passes_with_a_complete_dataset(ws, tmp_path):
    # a page-size-64 sibling in the dataset (a stand-in with the ragged interface) makes every name derivable
    data = tmp_path / "dataset"
    shutil.copytree(ws / fb.DEFS_DIR, data)
    ragged = json.loads((data / "gqa_ragged" / "gqa_ragged_prefill_causal_h4_kv2_d16.json").read_text())
    for stage in ("prefill_causal", "decode"):
        paged = {**ragged, "name": f"gqa_paged_{stage}_h4_kv2_d16_ps64", "op_type": "gqa_paged"}
        paged["axes"] = {**ragged["axes"], "page_size": {"type": "const", "value": 64}}
        (data / f"{paged['name']}.json").write_text(json.dumps(paged))
    t = fb.FlashInferBenchTarget(tmp_path / "cache", parallel=fbm.Parallel(tp=2, page_sizes=(1, 64)), dataset=str(data),
                                 sglang=str(FIXTURES / "sglang_models"), node_modules=str(tmp_path / "none"))
    a = analysis()
    cand = t.candidates(a, ws, 4)[0]
    t.apply(cand, a, ws, ctx(tmp_path))
    report = t.verify(cand, a, ws, ctx(tmp_path), FakeSandbox(), run_tests=True)
    assert report.passed, report.first_failure
    assert {c.status for c in report.checks if c.name.startswith("reference:")} == {"passed"}


def _node_modules() -> Path | None:
    import os

    # typescript + zod come from the npm registry into a cache; CI without them skips, visibly
    for cand in (Path(os.environ.get("ONBOARD_FIB_NODE_MODULES", "/nonexistent")), Path("/tmp/fib-cache/npm/node_modules")):
        if (cand / "typescript").is_dir() and (cand / "zod").is_dir() and shutil.which("node"):
            return cand
    return None


@pytest.mark.skipif(_node_modules() is None, reason="node + typescript + zod not installed (npm install into a cache)")
def test_tsc_passes_the_entry_and_fails_a_bad_type(ws, target, applied, tmp_path):
    check = tsc_check(ws, _node_modules(), tmp_path / "tsc", FakeSandbox())
    assert check.status == "passed", check.detail
    ts = ws / fb.MODELS_TS
    ts.write_text('type: "leaf",'.join(ts.read_text().rsplit('type: "layer",', 1)))
    bad = tsc_check(ws, _node_modules(), tmp_path / "tsc", FakeSandbox())
    assert bad.status == "failed" and "error TS" in bad.detail


def test_registered_in_factories(tmp_path):
    from tools.targets import get_target

    assert isinstance(get_target("flashinfer-bench", tmp_path), fb.FlashInferBenchTarget)


def test_playbook_renders_with_the_implementer_variables_and_is_strict():
    from jinja2 import UndefinedError

    from prompts import render

    text = render("targets/flashinfer_bench/playbook.md.j2", model_type="toy", display_name="Toy", tolerance=1e-4,
                  situation="S3", analysis_summary="moe", attempts=[{"candidate": "entry:x", "first_failure": "t"}])
    assert "`toy`" in text and "entry:x (t)" in text and "gemm_n{N}_k{K}" in text
    with pytest.raises(UndefinedError):
        render("targets/flashinfer_bench/playbook.md.j2", model_type="toy")


def test_verify_proves_definitions_an_implementer_wrote(ws, target, applied, tmp_path):
    # the LLM path: the missing paged-attention files appear in the workspace after apply
    a, cand, _, _ = applied
    ragged = json.loads((ws / fb.DEFS_DIR / "gqa_ragged" / "gqa_ragged_prefill_causal_h4_kv2_d16.json").read_text())
    for stage in ("prefill_causal", "decode"):
        d = {**ragged, "name": f"gqa_paged_{stage}_h4_kv2_d16_ps64", "op_type": "gqa_paged"}
        (ws / fb.DEFS_DIR / "gqa_paged" / f"{d['name']}.json").write_text(json.dumps(d))
    report = target.verify(cand, a, ws, ctx(tmp_path), FakeSandbox(), run_tests=True)
    status = {c.name: c.status for c in report.checks}
    assert status["templates"] == "passed" and status["semantic"] == "passed"
    assert status["reference:gqa_paged_decode_h4_kv2_d16_ps64"] == "passed"
    # and a broken file written by an implementer is caught by its CPU run
    broken = ws / fb.DEFS_DIR / "gqa_paged" / "gqa_paged_decode_h4_kv2_d16_ps64.json"
    d = json.loads(broken.read_text())
    d["reference"] = d["reference"].replace("return out", "return out, out")  # two outputs, one declared
    broken.write_text(json.dumps(d))
    report = target.verify(cand, a, ws, ctx(tmp_path), FakeSandbox(), run_tests=True)
    assert not report.passed and {c.name: c.status for c in report.checks}[
        "reference:gqa_paged_decode_h4_kv2_d16_ps64"] == "failed"


def test_gap_is_types_without_an_entry_that_sglang_implements(ws, target):
    """Not every causal-LM type: toy has an entry (its root module), unknown has no SGLang baseline."""
    index = target.sglang_index()["entries"]
    mappings = {"text-generation": {"toy": "ToyForCausalLM", "unknown": "UnknownForCausalLM",
                                    **{f"m{i}": arch for i, arch in enumerate(sorted(index)) if arch != "ToyForCausalLM"}}}
    gap = target.gap(ws, mappings)
    assert "toy" not in gap and "unknown" not in gap
    assert gap == sorted(k for k in mappings["text-generation"] if k.startswith("m"))
