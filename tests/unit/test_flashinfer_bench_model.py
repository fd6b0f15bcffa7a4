"""SGLang baseline by AST, module tree, layer counts and kernel names (no network, fixture model files)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tools.targets import flashinfer_bench_defs as defs
from tools.targets import flashinfer_bench_model as fbm

SGLANG = Path(__file__).resolve().parents[1] / "fixtures" / "flashinfer_bench" / "sglang_models"

# Meta-Llama-3.1-8B's config.json, the fields the analysis reads.
LLAMA_8B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "intermediate_size": 14336, "vocab_size": 128256, "rms_norm_eps": 1e-5, "head_dim": 128}
# The names in the upstream llama-3.1-8b entry of web/apps/web/data/models.ts.
UPSTREAM_LLAMA_8B = {"rmsnorm_h4096", "fused_add_rmsnorm_h4096", "gemm_n6144_k4096", "gemm_n4096_k4096",
                     "gemm_n28672_k4096", "gemm_n4096_k14336", "gqa_paged_prefill_causal_h32_kv8_d128_ps1",
                     "gqa_paged_decode_h32_kv8_d128_ps1", "gqa_ragged_prefill_causal_h32_kv8_d128"}


def analysis(raw: dict) -> dict:
    from tools.hf_config import analyze

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


def test_llama_8b_names_equal_upstream_entry():
    import tempfile

    a = analysis(LLAMA_8B)
    # the real class names, in the fixture's shape: rename the toy file's classes
    text = (SGLANG / "toy_llama.py").read_text().replace("Toy", "Llama")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "llama.py").write_text(text)
        _, mods = fbm.build_tree(fbm.index_dir(Path(d)), "LlamaForCausalLM", fbm.layer_counts(a))
    names = {n for m in mods for n in defs.definitions_for(m, a, fbm.Parallel())}
    assert names == UPSTREAM_LLAMA_8B
    by = {m.name: defs.definitions_for(m, a, fbm.Parallel()) for m in mods}
    assert by["post_attention_layernorm"] == ["fused_add_rmsnorm_h4096"]
    assert by["rotary_emb"] == [] and by["lm_head"] == []


def test_tensor_parallel_divides_heads_and_row_inputs():
    a = analysis(LLAMA_8B)
    attn = fbm.Module("attn", "layer", 32, "self_attn", "attn", attr="attn")
    down = fbm.Module("down_proj", "layer", 32, "mlp", "gemm_row", attr="down_proj")
    p = fbm.Parallel(tp=4, page_sizes=(1, 64))
    assert defs.definitions_for(attn, a, p) == [
        "gqa_paged_prefill_causal_h8_kv2_d128_ps1", "gqa_paged_prefill_causal_h8_kv2_d128_ps64",
        "gqa_paged_decode_h8_kv2_d128_ps1", "gqa_paged_decode_h8_kv2_d128_ps64", "gqa_ragged_prefill_causal_h8_kv2_d128"]
    assert defs.definitions_for(down, a, p) == ["gemm_n4096_k3584"]


DEEPSEEK_V3 = {"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168,
               "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
               "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
               "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
               "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
               "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
               "v_head_dim": 128, "vocab_size": 129280}


def test_deepseek_v3_counts_and_mla_moe_names():
    a = analysis(DEEPSEEK_V3)
    assert fbm.layer_counts(a) == {"layers": 61, "dense": 3, "moe": 58}
    p = fbm.Parallel(tp=8, ep=8)
    mla = fbm.Module("attn_mla", "layer", 61, "self_attn", "attn_mla", attr="attn_mla")
    assert defs.definitions_for(mla, a, p) == ["mla_ragged_prefill_causal_h16_qk192_vo128",
                                              "mla_paged_prefill_causal_h16_ckv512_kpe64_ps1",
                                              "mla_paged_decode_h16_ckv512_kpe64_ps1"]
    assert defs.moe_name(a, p) == "moe_fp8_block_scale_ds_routing_topk8_ng8_kg4_e32_h7168_i2048"
    kv_norm = fbm.Module("kv_a_layernorm", "layer", 61, "self_attn", "norm", "self.kv_lora_rank", "kv_a_layernorm")
    assert defs.definitions_for(kv_norm, a, p) == ["rmsnorm_h512"]


def test_qwen3_30b_all_layers_moe_and_renorm_routing():
    a = analysis({"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 2048,
                  "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                  "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128,
                  "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True,
                  "vocab_size": 151936})
    assert fbm.layer_counts(a) == {"layers": 48, "dense": 0, "moe": 48}
    assert defs.moe_name(a, fbm.Parallel()) == "moe_fp8_block_scale_renorm_topk8_e128_h2048_i768"


def test_indivisible_parallelism_is_an_error():
    a = analysis(LLAMA_8B)
    with pytest.raises(ValueError, match="not divisible by 3"):
        defs.definitions_for(fbm.Module("attn", "layer", 1, None, "attn", attr="attn"), a, fbm.Parallel(tp=3))


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
