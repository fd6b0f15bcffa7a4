"""The int4 row catches an export that breaks under compression (a real export, compression and compile).

The break is injected as real checkpoints carry it: huge weights on input channels that are always zero
(the norm before them zeroes those channels). PyTorch, and OpenVINO at f32, never see them; per-group int4
quantization spends its 16 levels on their range and flattens every other weight of the group to zero: the
model still exports and runs, its tokens no longer match. The same model without them passes the int4 bar.
"""

from __future__ import annotations

import json

import pytest
import torch

from sandboxes.targets.optimum_intel import precision as measured
from tools.targets.optimum_intel.precision import DEFAULT_TOLERANCES, judge

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    "]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from tools.hf.config import load_config
    from tools.tiny.model import build_tiny

    return build_tiny(load_config("llama").raw, tmp_path_factory.mktemp("tiny")).path


def _matrix(tiny, tmp_path, outlier: float | None):
    from optimum.exporters.openvino import main_export
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    if outlier:
        with torch.no_grad():  # every 16th hidden channel: zeroed by the norms, huge in the projections reading it
            for name, p in model.named_parameters():
                if name.endswith(("input_layernorm.weight", "post_attention_layernorm.weight")):
                    p[::16] = 0.0
                elif name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight",
                                    "up_proj.weight")):
                    p[:, ::16] = outlier * p.abs().max()
    src = tmp_path / "model"
    model.save_pretrained(src)
    tok = AutoTokenizer.from_pretrained(tiny)
    tok.save_pretrained(src)
    main_export(model_name_or_path=str(src), output=str(tmp_path / "ir"), task="text-generation-with-past")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    batch = dict(tok(PROMPTS, return_tensors="pt", padding=True))
    gen = dict(do_sample=False, max_new_tokens=8, min_new_tokens=8, pad_token_id=tok.pad_token_id)
    ref = measured.Reference(model, tok, PROMPTS, [batch], gen)
    result = measured.run_matrix(tmp_path / "ir", tmp_path / "precision", ref, ["CPU"], precisions=("f32", "int4"))
    return json.loads(json.dumps(result)), judge(result, DEFAULT_TOLERANCES, ["llama"], baseline={})


@pytest.mark.integration
def test_int4_row_fails_when_compression_breaks_the_model(tiny_llama, tmp_path):
    result, checks = _matrix(tiny_llama, tmp_path, outlier=50.0)
    rows = {r["precision"]: r for r in result["rows"]}
    assert rows["f32"]["top1"] == 1.0 and rows["f32"]["max_abs_diff"] < 1e-4  # the export itself is fine
    assert rows["int4"]["low_bit_weights"]["int4"] > 0  # compression ran and stored 4-bit weights
    [cpu] = checks
    assert cpu.name == "precision:CPU" and cpu.status == "failed"
    assert "int4:" in cpu.detail and "f32:" not in cpu.detail


@pytest.mark.integration
def test_same_model_without_the_break_passes_int4(tiny_llama, tmp_path):
    result, checks = _matrix(tiny_llama, tmp_path, outlier=None)
    [cpu] = checks
    assert cpu.status == "passed", cpu.detail
    assert {r["precision"] for r in result["rows"]} == {"f32", "int4"}
