"""Definition names: what a name parses to, and the names each module runs under TP/EP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.targets.flashinfer_bench import model as fbm
from tools.targets.flashinfer_bench import names as fbn
from tests import TESTS

SGLANG = TESTS / "fixtures" / "flashinfer_bench" / "sglang_models"

# Meta-Llama-3.1-8B's config.json, the fields the analysis reads.
LLAMA_8B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "intermediate_size": 14336, "vocab_size": 128256, "rms_norm_eps": 1e-5, "head_dim": 128}
# The names in the upstream llama-3.1-8b entry of web/apps/web/data/models.ts.
UPSTREAM_LLAMA_8B = {"rmsnorm_h4096", "fused_add_rmsnorm_h4096", "gemm_n6144_k4096", "gemm_n4096_k4096",
                     "gemm_n28672_k4096", "gemm_n4096_k14336", "gqa_paged_prefill_causal_h32_kv8_d128_ps1",
                     "gqa_paged_decode_h32_kv8_d128_ps1", "gqa_ragged_prefill_causal_h32_kv8_d128"}


def analysis(raw: dict) -> dict:
    from tools.hf.config import analyze

    return analyze(raw).model_dump(mode="json")


@pytest.mark.parametrize("name,family,consts", [
    ("gemm_n6144_k4096", "gemm", {"N": 6144, "K": 4096}),
    ("fused_add_rmsnorm_h4096", "fused_add_rmsnorm", {"hidden_size": 4096}),
    ("gqa_paged_decode_h32_kv8_d128_ps64", "gqa_paged",
     {"num_qo_heads": 32, "num_kv_heads": 8, "head_dim": 128, "page_size": 64}),
    ("moe_fp8_block_scale_renorm_topk8_e128_h2048_i768", "moe_renorm",
     {"num_local_experts": 128, "hidden_size": 2048, "intermediate_size": 768, "top_k": 8, "gemm1_out_size": 1536,
      "num_hidden_blocks": 16, "num_intermediate_blocks": 6, "num_gemm1_out_blocks": 12}),
])
def test_parse_name(name, family, consts):
    got = fbn.parse_name(name)
    assert got[0] == family and got[1] == consts


def test_page_size_and_stage_separate_siblings():
    a, b = fbn.parse_name("gqa_paged_decode_h32_kv8_d128_ps1"), fbn.parse_name("gqa_paged_decode_h8_kv1_d64_ps64")
    assert a[2] != b[2]
    assert fbn.parse_name("gqa_paged_decode_h8_kv1_d64_ps1")[2] == a[2]
    assert fbn.parse_name("gemm_n_4096_k_4096") is None  # the outdated spelling is not a name


def test_llama_8b_names_equal_upstream_entry():
    import tempfile

    a = analysis(LLAMA_8B)
    # the real class names, in the fixture's shape: rename the toy file's classes
    text = (SGLANG / "toy_llama.py").read_text().replace("Toy", "Llama")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "llama.py").write_text(text)
        _, mods = fbm.build_tree(fbm.index_dir(Path(d)), "LlamaForCausalLM", fbm.layer_counts(a))
    names = {n for m in mods for n in fbn.definitions_for(m, a, fbm.Parallel())}
    assert names == UPSTREAM_LLAMA_8B
    by = {m.name: fbn.definitions_for(m, a, fbm.Parallel()) for m in mods}
    assert by["post_attention_layernorm"] == ["fused_add_rmsnorm_h4096"]
    assert by["rotary_emb"] == [] and by["lm_head"] == []


def test_tensor_parallel_divides_heads_and_row_inputs():
    a = analysis(LLAMA_8B)
    attn = fbm.Module("attn", "layer", 32, "self_attn", "attn", attr="attn")
    down = fbm.Module("down_proj", "layer", 32, "mlp", "gemm_row", attr="down_proj")
    p = fbm.Parallel(tp=4, page_sizes=(1, 64))
    assert fbn.definitions_for(attn, a, p) == [
        "gqa_paged_prefill_causal_h8_kv2_d128_ps1", "gqa_paged_prefill_causal_h8_kv2_d128_ps64",
        "gqa_paged_decode_h8_kv2_d128_ps1", "gqa_paged_decode_h8_kv2_d128_ps64", "gqa_ragged_prefill_causal_h8_kv2_d128"]
    assert fbn.definitions_for(down, a, p) == ["gemm_n4096_k3584"]


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
    assert fbn.definitions_for(mla, a, p) == ["mla_ragged_prefill_causal_h16_qk192_vo128",
                                             "mla_paged_prefill_causal_h16_ckv512_kpe64_ps1",
                                             "mla_paged_decode_h16_ckv512_kpe64_ps1"]
    assert fbn.moe_name(a, p) == "moe_fp8_block_scale_ds_routing_topk8_ng8_kg4_e32_h7168_i2048"
    kv_norm = fbm.Module("kv_a_layernorm", "layer", 61, "self_attn", "norm", "self.kv_lora_rank", "kv_a_layernorm")
    assert fbn.definitions_for(kv_norm, a, p) == ["rmsnorm_h512"]


def test_qwen3_30b_all_layers_moe_and_renorm_routing():
    a = analysis({"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 2048,
                  "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                  "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128,
                  "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True,
                  "vocab_size": 151936})
    assert fbm.layer_counts(a) == {"layers": 48, "dense": 0, "moe": 48}
    assert fbn.moe_name(a, fbm.Parallel()) == "moe_fp8_block_scale_renorm_topk8_e128_h2048_i768"


def test_indivisible_parallelism_is_an_error():
    a = analysis(LLAMA_8B)
    with pytest.raises(ValueError, match="not divisible by 3"):
        fbn.definitions_for(fbm.Module("attn", "layer", 1, None, "attn", attr="attn"), a, fbm.Parallel(tp=3))
