"""Causal LMs without a KV cache (patterns/no_cache.py, test_edits_no_cache.py): the precondition, the
registration for text-generation only, the repository's test edits, and what the sandbox reports."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path

import pytest

from sandboxes.targets.optimum_intel import cached
from sandboxes.targets.optimum_intel.verify import gate_passed
from tools.source.literals import literal_keys
from tools.source.python_edit import EditError
from tools.targets.optimum_intel.patch import PatchSpec, _registrations, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.no_cache import NO_KV_CACHE, export_task
from tools.targets.optimum_intel.test_edits_no_cache import TABLE, TEST, add_table, add_test, count_untested
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
DECODER = "tests/openvino/test_decoder.py"
CLI = "tests/openvino/test_exporters_cli.py"
EXPORT = "tests/openvino/test_export.py"
CLS = "OVModelForCausalLMIntegrationTest"
# upstream's test_find_untested_architectures, as far as the edit reads it
UNTESTED = textwrap.dedent('''\
    class OVModelForCausalLMIntegrationTest(unittest.TestCase):
        SUPPORTED_ARCHITECTURES = ("gpt2",)
        SUPPORTED_ARCHITECTURES = tuple(a for a in SUPPORTED_ARCHITECTURES if a in supported())

        def test_find_untested_architectures(self):
            tested_architectures = set(self.SUPPORTED_ARCHITECTURES)
            untested_architectures = supported_architectures - tested_architectures
    ''')


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def _ctx(ws: Path, model_type: str) -> PatternContext:
    return PatternContext({"model_type": model_type, "raw_text_config": {}}, ws, "LlamaOpenVINOConfig")


def _spec(model_type: str, tasks, **kw) -> PatchSpec:
    fields = dict(model_type=model_type, base_class="LlamaOpenVINOConfig", min_transformers_version="4.0.0",
                  display_name=model_type, tiny_config={"model_type": model_type, "n_layer": 2}, expected_sdpa=0,
                  tasks=tasks)
    return PatchSpec(**{**fields, **kw})


# -- the precondition ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type,own", [("openai-gpt", None), ("xlnet", "mems"),
                                            ("reformer", "past_buckets_states")])
def test_applies_to_causal_lms_whose_forward_takes_no_past_key_values(ws, model_type, own):
    reasons = dict(applicable(_ctx(ws, model_type)))
    assert NO_KV_CACHE.name in reasons
    assert "takes no past_key_values" in reasons[NO_KV_CACHE.name]
    assert (own in reasons[NO_KV_CACHE.name]) if own else "its own cache" not in reasons[NO_KV_CACHE.name]


@pytest.mark.parametrize("model_type", ["gpt2", "llama", "mamba", "bert"])
def test_leaves_cached_decoders_state_space_models_and_encoders_alone(ws, model_type):
    # gpt2/llama take past_key_values, mamba cache_params; bert has no causal-LM class to judge
    assert NO_KV_CACHE.name not in dict(applicable(_ctx(ws, model_type)))


def test_the_edit_registers_text_generation_only_and_says_why(ws):
    edit = combined_edit(_ctx(ws, "openai-gpt"), [NO_KV_CACHE.name])
    assert edit.tasks == ["text-generation"]
    assert "OpenAIGPTLMHeadModel" in edit.note and "use_cache=False" in edit.note


# -- write_patch with the pattern's tasks ---------------------------------------------------------------

def test_registration_tests_and_cli_entry_for_a_model_without_cache(ws):
    export_before = (ws / EXPORT).read_text()
    result = write_patch(ws, _spec("openai-gpt", ["text-generation"], expected_int8={"model": 10}))
    regs = _registrations(ast.parse((ws / CONFIGS).read_text()))
    assert [t for rs in regs.values() for mt, t in rs if mt == "openai-gpt"] == [["text-generation"]]
    assert export_task(ws, "openai-gpt") == "text-generation" and export_task(ws, "llama") != "text-generation"
    decoder = (ws / DECODER).read_text()
    assert literal_keys(decoder, f"{CLS}.{TABLE}") == ["openai-gpt"]
    assert "openai-gpt" not in literal_keys(decoder, f"{CLS}.SUPPORTED_ARCHITECTURES")  # its test asserts a cache
    tree = ast.parse(decoder)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == CLS)
    test = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == TEST)
    assert "use_cache=False" in ast.get_source_segment(decoder, test)
    assert ("text-generation", "openai-gpt") in literal_keys((ws / CLI).read_text(), "OVCLIExportTestCase.SUPPORTED_ARCHITECTURES")
    assert ("text-generation-with-past", "openai-gpt") not in literal_keys(
        (ws / CLI).read_text(), "OVCLIExportTestCase.SUPPORTED_ARCHITECTURES")
    assert (ws / EXPORT).read_text() == export_before
    assert any(EXPORT in n and "without past" in n for n in result.notes)
    assert not result.skipped, result.skipped


def test_a_second_model_joins_the_table_and_the_test_is_written_once(ws):
    write_patch(ws, _spec("openai-gpt", ["text-generation"]))
    write_patch(ws, _spec("xlnet", ["text-generation"]))
    again = write_patch(ws, _spec("xlnet", ["text-generation"]))
    decoder = (ws / DECODER).read_text()
    assert literal_keys(decoder, f"{CLS}.{TABLE}") == ["openai-gpt", "xlnet"]
    assert decoder.count(f"def {TEST}(") == 1
    assert DECODER not in again.changed


def test_cli_entry_waits_for_the_measured_int8_count(ws):
    result = write_patch(ws, _spec("openai-gpt", ["text-generation"], expected_int8=None, measured=True))
    assert "openai-gpt" not in str(literal_keys((ws / CLI).read_text(), "OVCLIExportTestCase.SUPPORTED_ARCHITECTURES"))
    assert any(CLI in s and "int8" in s for s in result.skipped)


# -- the test edits on upstream's shapes ----------------------------------------------------------------

def test_untested_architectures_check_counts_the_table_once():
    edit = count_untested(UNTESTED)
    assert "set(self.SUPPORTED_ARCHITECTURES) | set(self.SUPPORTED_ARCHITECTURES_WITHOUT_CACHE)" in edit.text
    assert not count_untested(edit.text).changed


def test_untested_check_that_cannot_be_read_is_refused():
    ambiguous = UNTESTED.replace("untested_architectures = supported",
                                 "tested_architectures = set(self.SUPPORTED_ARCHITECTURES)\n        x = supported")
    with pytest.raises(EditError):
        count_untested(ambiguous)


def test_table_follows_the_version_filter_and_the_test_follows_the_comparison():
    text = add_table(UNTESTED, "openai-gpt").text
    body = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef)).body
    names = [getattr(s.targets[0], "id", None) for s in body if isinstance(s, ast.Assign)]
    assert names == ["SUPPORTED_ARCHITECTURES", "SUPPORTED_ARCHITECTURES", TABLE, TABLE]  # table, then its filter
    text = add_test(text).text
    assert f"def {TEST}(" in text and not add_test(text).changed


# -- what the sandbox reports ----------------------------------------------------------------------------

def test_cached_decode_is_reported_skipped_with_its_reason_without_a_cache():
    check = cached.decode_check("text-generation", None, None, None, 1e-4)
    assert check["status"] == "skipped" and "without a KV cache" in check["detail"]
    assert cached.decode_check("text-generation-with-past", None, _NoStates(), None, 1e-4) is None


def test_skipped_checks_do_not_block_the_gate_but_never_pass_it_alone():
    passed, skipped, failed = ({"status": s} for s in ("passed", "skipped", "failed"))
    assert gate_passed([passed, skipped])
    assert not gate_passed([skipped])
    assert not gate_passed([passed, skipped, failed])


class _NoStates:
    input_names = {"input_ids": 0, "past_key_values.0.key": 1}
    request = None


def test_verify_asks_the_sandbox_for_the_task_the_workspace_registers(ws, monkeypatch, tmp_path):
    import tools.targets.sandbox_job as sandbox_job
    from tools.targets.base import Candidate, JobContext
    from tools.targets.optimum_intel.target import OptimumIntelTarget

    specs = []

    def fake_run_job(sandbox, job, workspace, c, spec, timeout_s, workspace_only=()):
        specs.append(spec)
        return {"checks": [{"name": "export", "status": "passed", "detail": "", "metrics": {}}], "timings": {}}

    monkeypatch.setattr(sandbox_job, "run_job", fake_run_job)
    write_patch(ws, _spec("openai-gpt", ["text-generation"]))
    write_patch(ws, _spec("cwm", None))
    target = OptimumIntelTarget(tmp_path)
    for model_type in ("openai-gpt", "cwm"):
        target.verify(Candidate(id="c", base="llama"), {"model_type": model_type}, ws,
                      JobContext(model_type=model_type, work_dir=tmp_path / "w"), None, run_tests=False)
    assert [s["task"] for s in specs] == ["text-generation", "text-generation-with-past"]


def test_the_pr_reproduces_the_export_with_the_registered_task(ws):
    from tools.targets.optimum_intel.target import _reproduce

    write_patch(ws, _spec("openai-gpt", ["text-generation"]))
    export = next(line for line in _reproduce("openai-gpt", ws, None) if line.startswith("optimum-cli"))
    assert " --task text-generation " in export
