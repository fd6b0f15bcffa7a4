"""join_uncached_generation: a model whose transformers cache path departs from the model joins the decoder
tests' use_cache=False generation lists, found by what their branch does; write_patch does it only when
verification measured the departure."""

from __future__ import annotations

import ast
import shutil

import pytest

from tools.source.python_edit import EditError
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.test_edits_uncached import join_uncached_generation, uncached_lists
from tests import TESTS

# the shape of upstream's test_decoder.py (e1de5beec): two tests, each with its inline list
DECODER = '''\
class OVModelForCausalLMIntegrationTest(unittest.TestCase):
    SUPPORTED_ARCHITECTURES = ("gemma2", "jais", "llama")

    def test_compare_to_transformers(self, model_arch):
        additional_inputs = {}
        if model_arch in {"gemma2", "gemma3_text"}:
            additional_inputs = {"past_key_values": DynamicCache()}

        elif model_arch in {
            "aquila",
            "decilm",
            "jais",
            "orion",
            "xverse",
        }:
            additional_inputs = {"use_cache": False}
        generate(**additional_inputs)

    def test_beam_search(self, model_arch):
        for gen_config in gen_configs:
            if model_arch in {"jais", "orion"}:
                additional_inputs["do_sample"] = False
            elif model_arch in {
                "aquila",
                "jais",
                "xverse"
            }:
                additional_inputs["use_cache"] = False
'''


def _lists(text: str) -> list[list[str]]:
    return [[e.value for e in lit.elts] for lit in uncached_lists(ast.parse(text))]


def test_joins_every_list_that_turns_the_cache_off_in_sorted_place():
    edit = join_uncached_generation(DECODER, "git")
    assert edit.changed
    assert _lists(edit.text) == [["aquila", "decilm", "git", "jais", "orion", "xverse"],
                                 ["aquila", "git", "jais", "xverse"]]
    # the other tables and branches are untouched
    assert 'SUPPORTED_ARCHITECTURES = ("gemma2", "jais", "llama")' in edit.text
    assert 'if model_arch in {"gemma2", "gemma3_text"}:' in edit.text and '{"jais", "orion"}' in edit.text
    assert '            "decilm",\n            "git",\n            "jais",\n' in edit.text


def test_first_and_last_places_and_idempotence():
    first = join_uncached_generation(DECODER, "abc").text
    assert _lists(first)[1][0] == "abc" and '                "abc",\n                "aquila",\n' in first
    last = join_uncached_generation(DECODER, "zamba").text
    assert _lists(last) == [["aquila", "decilm", "jais", "orion", "xverse", "zamba"],
                            ["aquila", "jais", "xverse", "zamba"]]
    again = join_uncached_generation(last, "zamba")
    assert not again.changed and again.text == last


def test_single_line_list():
    text = DECODER.replace('''{
                "aquila",
                "jais",
                "xverse"
            }''', '{"aquila", "jais", "xverse"}')
    assert '{"aquila", "git", "jais", "xverse"}' in join_uncached_generation(text, "git").text


def test_no_such_list_is_an_error_not_a_guess():
    with pytest.raises(EditError, match="use_cache=False"):
        join_uncached_generation(DECODER.replace('"use_cache"', '"num_beams"'), "git")


def _spec(**kw) -> PatchSpec:
    return PatchSpec(model_type="git", base_class="LlamaOpenVINOConfig", min_transformers_version="5.0.0",
                     display_name="GIT", tiny_config={"model_type": "git", "vocab_size": 64}, expected_sdpa=0,
                     **kw)


@pytest.fixture
def ws(tmp_path):
    shutil.copytree(TESTS / "fixtures" / "optimum_intel", tmp_path / "ws",
                    ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    decoder = tmp_path / "ws" / "tests" / "openvino" / "test_decoder.py"
    text = decoder.read_text()
    # the fixture's decoder test with upstream's list, inside its test class
    decoder.write_text(text + "\n" + "\n".join("    " + ln if ln else "" for ln in
                                                DECODER.split("\n")[3:]))
    return tmp_path / "ws"


def test_write_patch_joins_only_when_measured(ws):
    decoder = ws / "tests" / "openvino" / "test_decoder.py"
    write_patch(ws, _spec())
    assert all("git" not in names for names in _lists(decoder.read_text()))
    result = write_patch(ws, _spec(compare_uncached=True))
    assert [("git" in names) for names in _lists(decoder.read_text())] == [True, True]
    assert "tests/openvino/test_decoder.py" in result.files
    assert any("use_cache=False" in n and "(measured)" in n for n in result.notes)


def test_write_patch_without_the_list_says_so(tmp_path):
    shutil.copytree(TESTS / "fixtures" / "optimum_intel", tmp_path / "ws",
                    ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    result = write_patch(tmp_path / "ws", _spec(compare_uncached=True))
    assert any("use_cache=False" in s for s in result.skipped)


@pytest.mark.parametrize("probe, expected", [({"compare_uncached": True}, True), ({"compare_uncached": False}, False),
                                             (None, False)])
def test_verify_hands_the_measured_probe_to_the_test_edits(monkeypatch, tmp_path, probe, expected):
    import tools.targets.sandbox_job as sandbox_job
    from tools.targets.base import Candidate, JobContext
    from tools.targets.optimum_intel.target import TESTS_DIR, OptimumIntelTarget

    parity = {"checks": [{"name": "export", "status": "passed", "detail": "", "metrics": {"sdpa_ops": 0}},
                         {"name": "batch_left_padding", "status": "passed", "detail": "",
                          "metrics": {"torch_cache": probe}}], "timings": {}}
    monkeypatch.setattr(sandbox_job, "run_job", lambda *a, **k: parity)
    (tmp_path / TESTS_DIR).mkdir(parents=True)
    seen = []

    class Written:
        files: list = []

    def fake_write(self, candidate, analysis, workspace, ctx, facts=None):
        seen.append(facts)
        return Written()

    monkeypatch.setattr(OptimumIntelTarget, "_write", fake_write)
    OptimumIntelTarget(tmp_path).verify(Candidate(id="c", base="llama"), {"lineage": ["llama"]}, tmp_path,
                                        JobContext(model_type="git", work_dir=tmp_path / "w"), None, run_tests=True)
    assert bool(seen[0]["compare_uncached"]) is expected
