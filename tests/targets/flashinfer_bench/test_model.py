"""SGLang baseline by AST, module tree and layer counts (no network, fixture model files)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tools.targets.flashinfer_bench import model as fbm
from tests import TESTS

SGLANG = TESTS / "fixtures" / "flashinfer_bench" / "sglang_models"


def analysis(raw: dict) -> dict:
    from tools.hf.config import analyze

    return analyze(raw).model_dump(mode="json")


@pytest.fixture(scope="module")
def index() -> dict:
    return fbm.index_dir(SGLANG)


def toy(**kw) -> dict:
    raw = {"model_type": "toy", "architectures": ["ToyForCausalLM"], "hidden_size": 64, "num_hidden_layers": 4,
           "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000}
    return {**raw, **kw}


def test_entry_class_maps_architecture_to_file(index):
    assert index["entries"] == {"ToyForCausalLM": "toy_llama", "ToyMoeForCausalLM": "toy_moe"}
    with pytest.raises(fbm.BaselineMissing, match="NopeForCausalLM"):
        fbm.baseline_for(index, "NopeForCausalLM")


def test_dense_tree_follows_sglang_attributes(index):
    a = analysis(toy())
    module, mods = fbm.build_tree(index, "ToyForCausalLM", fbm.layer_counts(a))
    by = {m.name: m for m in mods}
    assert module == "toy_llama"
    # the factory method `_init_model` stands for ToyModel; logits_processor is not a tracked module
    assert by["ToyModel"].parent == "ToyForCausalLM" and "logits_processor" not in by
    assert by["layers"].count == 4 and by["ToyDecoderLayer"].parent == "layers"
    assert [by[n].parent for n in ("qkv_proj", "attn", "o_proj")] == ["self_attn"] * 3
    assert by["gate_up_proj"].op == "gemm_merged" and by["mlp"].type == "block"
    assert len({m.name for m in mods}) == len(mods)


def test_moe_split_uses_config_counts_and_cross_file_classes(index):
    a = analysis(toy(architectures=["ToyMoeForCausalLM"], num_experts=8, num_experts_per_tok=2,
                     moe_intermediate_size=32, first_k_dense_replace=1, n_shared_experts=1))
    counts = fbm.layer_counts(a)
    assert counts == {"layers": 4, "dense": 1, "moe": 3}
    _, mods = fbm.build_tree(index, "ToyMoeForCausalLM", counts)
    by = {m.name: m for m in mods}
    assert by["ToyMoeDecoderLayer"].count == 4  # decoder_layer_type default of the derived model wins
    assert by["mlp_dense"].count == 1 and by["moe"].count == 3
    assert by["gate_up_proj"].parent == "mlp_dense"  # dense keeps the plain names
    assert by["shared_experts_gate_up_proj"].parent == "shared_experts"
    assert {by[n].op for n in ("moe_gate", "moe_topk", "moe_experts")} == {"gemm", "moe_topk", "moe_experts"}
    assert len({m.name for m in mods}) == len(mods)


def test_wheel_index_is_cached_and_versioned(tmp_path):
    wheel = tmp_path / "sglang-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for p in SGLANG.glob("*.py"):
            zf.writestr(fbm.MODELS_PKG + p.name, p.read_text())
        zf.writestr(fbm.MODELS_PKG + "sub/ignored.py", "EntryClass = Nope\n")
    first = fbm.index_wheel(wheel, tmp_path / "cache")
    assert first["entries"] == {"ToyForCausalLM": "toy_llama", "ToyMoeForCausalLM": "toy_moe"}
    assert (tmp_path / "cache" / f"{wheel.stem}.index-v{fbm.INDEX_VERSION}.json").is_file()
    assert fbm.index_wheel(wheel, tmp_path / "cache") == first


def test_module_level_alias_resolves_and_entryclass_still_counts():
    src_a = "class AMLP:\n    def __init__(self, c):\n        self.gate_up_proj = MergedColumnParallelLinear(c)\n"
    src_b = ("from sglang.srt.models.a import AMLP\n\nBMLP = AMLP\n\n\nclass BForCausalLM:\n"
             "    def __init__(self, c):\n        self.mlp = BMLP(c)\n\n\nEntryClass = BForCausalLM\n")
    index = fbm.index_sources({"a": src_a, "b": src_b})
    assert index["entries"] == {"BForCausalLM": "b"}
    _, mods = fbm.build_tree(index, "BForCausalLM", {"layers": 1, "dense": 1, "moe": 0})
    assert [(m.name, m.parent) for m in mods] == [("BForCausalLM", None), ("mlp", "BForCausalLM"),
                                                   ("gate_up_proj", "mlp")]
