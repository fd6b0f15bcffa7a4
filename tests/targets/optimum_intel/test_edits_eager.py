"""eager_reference: a model whose transformers default attention was measured non-causal gets its decoder
tests' transformers reference loaded with eager attention (as upstream sets gemma2's attention per model);
write_patch does it only when verification measured it, and verify hands the measurement over."""

from __future__ import annotations

import ast
import shutil

import pytest

from tools.source.python_edit import EditError
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.test_edits_eager import eager_reference
from tests import TESTS

# the shape of upstream's test_decoder.py (e1de5beec): the reference loads of the two comparing tests
DECODER = '''\
class OVModelForCausalLMIntegrationTest(unittest.TestCase):
    def test_compare_to_transformers(self, model_arch):
        model_kwargs = {}
        if model_arch == "gemma2":
            model_kwargs["attn_implementation"] = "sdpa"
        ov_model = OVModelForCausalLM.from_pretrained(model_id, export=True, **model_kwargs)

        set_seed(SEED)
        with mock_torch_cuda_is_available("awq" in model_arch or "gptq" in model_arch):
            transformers_model = AutoModelForCausalLM.from_pretrained(model_id, **model_kwargs)
        generate()

    def test_beam_search(self, model_arch):
        model_kwargs = {}
        ov_model_stateful = OVModelForCausalLM.from_pretrained(model_id, export=True, **model_kwargs)
        set_seed(SEED)
        with mock_torch_cuda_is_available("awq" in model_arch or "gptq" in model_arch):
            transformers_model = AutoModelForCausalLM.from_pretrained(model_id, **model_kwargs)

    def test_hybrid_model_multi_step_generation(self, model_arch):
        transformers_model = AutoModelForCausalLM.from_pretrained(model_id)

    def test_phi3_longrope_support(self):
        model_kwargs = {}
        transformers_model = AutoModelForCausalLM.from_pretrained(model_id, **model_kwargs)
'''
LINE = '''        if model_arch == "glm_moe_dsa":
            model_kwargs["attn_implementation"] = "eager"
        with mock_torch_cuda_is_available('''


def test_eager_line_before_every_reference_load_that_takes_model_kwargs():
    edit = eager_reference(DECODER, "glm_moe_dsa")
    assert edit.changed
    assert edit.text.count(LINE) == 2  # test_compare_to_transformers and test_beam_search
    ast.parse(edit.text)
    # after the OpenVINO model was loaded: only the transformers reference changes attention
    assert edit.text.index("ov_model = ") < edit.text.index('model_arch == "glm_moe_dsa"')
    # a load without model_kwargs, or in a test without model_arch, is left alone
    tail = edit.text[edit.text.index("def test_hybrid_model_multi_step_generation"):]
    assert "glm_moe_dsa" not in tail


def test_idempotent_and_per_model():
    once = eager_reference(DECODER, "glm_moe_dsa").text
    again = eager_reference(once, "glm_moe_dsa")
    assert not again.changed and again.text == once
    both = eager_reference(once, "doge")
    assert both.changed and both.text.count('model_kwargs["attn_implementation"] = "eager"') == 4


def test_no_reference_load_is_an_error_not_a_guess():
    text = DECODER.replace("from_pretrained(model_id, **model_kwargs)", "from_pretrained(model_id)")
    assert "transformers_model = AutoModelForCausalLM.from_pretrained(model_id)" in text
    with pytest.raises(EditError, match="model_kwargs"):
        eager_reference(text, "glm_moe_dsa")


def _spec(**kw) -> PatchSpec:
    return PatchSpec(model_type="doge", base_class="LlamaOpenVINOConfig", min_transformers_version="5.0.0",
                     display_name="Doge", tiny_config={"model_type": "doge", "vocab_size": 64}, expected_sdpa=0,
                     **kw)


@pytest.fixture
def ws(tmp_path):
    shutil.copytree(TESTS / "fixtures" / "optimum_intel", tmp_path / "ws",
                    ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    decoder = tmp_path / "ws" / "tests" / "openvino" / "test_decoder.py"
    decoder.write_text(decoder.read_text() + "\n" + "\n".join("    " + ln if ln else "" for ln in
                                                              DECODER.split("\n")[1:]))
    return tmp_path / "ws"


def test_write_patch_loads_eager_only_when_measured(ws):
    decoder = ws / "tests" / "openvino" / "test_decoder.py"
    write_patch(ws, _spec())
    assert '"attn_implementation"] = "eager"' not in decoder.read_text()
    result = write_patch(ws, _spec(eager_reference=True))
    assert decoder.read_text().count('if model_arch == "doge":\n') == 2
    assert any("eager attention" in n and "(measured)" in n for n in result.notes)


@pytest.mark.parametrize("attention, expected", [({"default_noncausal": True}, True),
                                                 ({"default_noncausal": False}, False), (None, False)])
def test_verify_hands_the_measured_causality_to_the_test_edits(monkeypatch, tmp_path, attention, expected):
    import tools.targets.sandbox_job as sandbox_job
    from tools.targets.base import Candidate, JobContext
    from tools.targets.optimum_intel.target import TESTS_DIR, OptimumIntelTarget

    parity = {"checks": [{"name": "export", "status": "passed", "detail": "", "metrics": {"sdpa_ops": 0}},
                         {"name": "batch_left_padding", "status": "passed", "detail": "",
                          "metrics": {"torch_cache": None, "torch_attention": attention}}], "timings": {}}
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
                                        JobContext(model_type="doge", work_dir=tmp_path / "w"), None, run_tests=True)
    assert bool(seen[0]["eager_reference"]) is expected
