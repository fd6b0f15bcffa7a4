"""Shrinking keeps identity; tiny models build, validate, cache and re-check their invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.hf.config import ConfigError, analyze, load_config
from tools.tiny.model import MARKER, TinyModelError, build_tiny, check_invariants, validate_tiny
from tools.tiny.shrink import shrink_config
from tests import TESTS

SHARED = TESTS / "data" / "hf_configs"  # copies of published configs
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")
MAX_SEQ = 64


def shared_configs() -> list[str]:
    return sorted(p.name for p in SHARED.glob("*_config.json") if "hf_quant" not in p.name) if SHARED.is_dir() else []


def text_of(cfg: dict) -> dict:
    key = analyze(cfg).text_config_key
    return cfg[key] if key else cfg


# -- shrink invariants (pure: no model is built) -----------------------------------------------------


@needs_shared
@pytest.mark.parametrize("name", shared_configs())
def test_shrink_keeps_identity_and_invariants(name):
    raw = load_config(SHARED / name).raw
    before = analyze(raw)
    tiny = shrink_config(raw, before, max_seq=MAX_SEQ)
    after = analyze(tiny)
    t = text_of(tiny)
    assert tiny["model_type"] == raw["model_type"] and tiny.get("architectures") == raw.get("architectures")
    assert set(after.layer_pattern) == set(before.layer_pattern), "a layer kind was lost"
    assert 2 <= after.num_layers <= 6
    assert set(after.features) - {"remote_code"} == set(before.features) - {"remote_code"}
    assert "quantization_config" not in tiny and "quantization_config" not in t
    assert after.hidden_size <= 128 and (after.vocab_size or 0) <= 1024
    vocab = after.vocab_size
    for d in (tiny, t):
        for k, v in d.items():
            if k.endswith("_token_id") and v is not None:
                for i in (v if isinstance(v, list) else [v]):
                    assert 0 <= i < vocab, (k, i)
    if after.sliding_window is not None:
        assert after.sliding_window < MAX_SEQ
    assert (after.max_position_embeddings or 256) >= 256
    if before.moe:
        m = after.moe
        assert m["num_experts"] >= m["top_k"] + 1 and m["num_experts"] >= 4
        assert bool(m["num_shared_experts"]) == bool(before.moe["num_shared_experts"])
        if before.moe["first_k_dense"]:
            assert m["first_k_dense"] == 1 and after.num_layers >= 2
        if m["n_group"] and m["n_group"] > 1:
            assert m["num_experts"] % m["n_group"] == 0 and m["topk_group"] <= m["n_group"]
    if before.mla:
        assert all(after.mla[k] is None or after.mla[k] <= 32 for k in after.mla)
        assert after.mla["kv_lora_rank"] % 8 == 0
    if before.mtp_layers:
        assert after.mtp_layers == 1
    if before.num_key_value_heads and before.num_attention_heads:
        mha_before = before.num_key_value_heads == before.num_attention_heads
        assert (after.num_key_value_heads == after.num_attention_heads) == mha_before


@needs_shared
def test_explicit_head_dim_stays_explicit():
    raw = load_config(SHARED / "Qwen--Qwen3-0.6B_config.json").raw  # head_dim 128 != 1024 / 16
    t = shrink_config(raw)
    assert t["head_dim"] != t["hidden_size"] // t["num_attention_heads"]
    assert (t["num_attention_heads"], t["num_key_value_heads"]) == (4, 2)


def test_hybrid_keeps_one_of_each_layer_kind():
    raw = {"model_type": "qwen3_next", "num_hidden_layers": 48, "full_attention_interval": 4, "hidden_size": 2048,
           "num_attention_heads": 16, "num_key_value_heads": 2}
    t = shrink_config(raw)
    assert analyze(t).layer_pattern == ["linear_attention", "full_attention"]
    listed = {**raw, "layer_types": ["linear_attention"] * 3 + ["full_attention"]}
    listed["num_hidden_layers"] = 4
    assert shrink_config(listed)["layer_types"] == ["linear_attention", "full_attention"]


def test_nemotron_pattern_string_is_compressed():
    raw = {"model_type": "nemotron_h", "num_hidden_layers": 8, "hybrid_override_pattern": "MEMEM*EM"}
    t = shrink_config(raw)
    assert t["hybrid_override_pattern"] == "ME*" and t["num_hidden_layers"] == 3


def test_special_ids_remapped_keeping_equalities():
    raw = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8,
           "vocab_size": 150000, "bos_token_id": 149000, "eos_token_id": [149001, 149002], "pad_token_id": 149001}
    t = shrink_config(raw)
    assert t["pad_token_id"] == t["eos_token_id"][0] and t["bos_token_id"] not in t["eos_token_id"]
    assert all(i < t["vocab_size"] for i in [t["bos_token_id"], *t["eos_token_id"]])


# -- build, validate, cache --------------------------------------------------------------------------

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
         "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
         "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001, "max_position_embeddings": 131072,
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0}


@pytest.fixture(scope="module")
def llama_tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tiny")
    return cache, build_tiny(LLAMA, cache)


def test_dense_build_is_valid_and_saved_as_promised(llama_tiny):
    from transformers import AutoTokenizer

    _, tiny = llama_tiny
    names = {p.name for p in tiny.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER} <= names
    assert tiny.validation["ok"] and not tiny.cached and tiny.num_params < 2_000_000
    saved = json.loads((tiny.path / "config.json").read_text())
    assert saved["model_type"] == "llama" and saved["architectures"] == ["LlamaForCausalLM"]
    assert saved["rope_parameters"]["rope_type"] == "llama3"
    tok = AutoTokenizer.from_pretrained(tiny.path)
    assert tok.eos_token_id == saved["eos_token_id"] and tok.bos_token_id == saved["bos_token_id"]
    assert max(tok("The quick brown fox").input_ids) < saved["vocab_size"]


def test_weights_are_float32_and_deterministic(llama_tiny, tmp_path):
    from safetensors.torch import load_file

    _, tiny = llama_tiny
    again = build_tiny(LLAMA, tmp_path, validate=False)
    a, b = load_file(tiny.path / "model.safetensors"), load_file(again.path / "model.safetensors")
    assert all(t.dtype.is_floating_point and str(t.dtype) == "torch.float32" for t in a.values())
    assert all((a[k] == b[k]).all() for k in a)


def test_cache_reused_then_rebuilt_when_invariants_break(llama_tiny):
    cache, tiny = llama_tiny
    again = build_tiny(LLAMA, cache)
    assert again.cached and again.path == tiny.path
    cfg = tiny.path / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_size": 64', '"hidden_size": 65'))
    assert check_invariants(tiny.path) is None
    rebuilt = build_tiny(LLAMA, cache)
    assert not rebuilt.cached and check_invariants(rebuilt.path) is not None
    marker = json.loads((tiny.path / MARKER).read_text())
    (tiny.path / MARKER).write_text(json.dumps({**marker, "builder_version": "old"}))
    assert not build_tiny(LLAMA, cache).cached
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


def test_validate_reports_a_broken_directory(tmp_path):
    report = validate_tiny(tmp_path)
    assert not report["ok"] and "reload failed" in report["problems"][0]


def test_parameter_budget(tmp_path):
    with pytest.raises(TinyModelError, match="over the budget"):
        build_tiny(LLAMA, tmp_path, max_params=1000)


def test_unknown_model_type_cannot_be_built(tmp_path):
    with pytest.raises(ConfigError, match="no 'mimo' model type"):
        build_tiny({"model_type": "mimo", "num_hidden_layers": 2}, tmp_path)


# -- other kinds (a few seconds each) ----------------------------------------------------------------


@pytest.mark.integration
@needs_shared
@pytest.mark.parametrize("name", [
    "Qwen--Qwen3-30B-A3B_config.json",          # MoE
    "deepseek-ai--DeepSeek-V3_config.json",     # MLA + MoE + MTP, dense-first layer
    "openai--gpt-oss-120b_config.json",         # sliding + full, MoE, quantised original
    "nvidia--Gemma-4-31B-IT-NVFP4_config.json",  # VLM, sliding + full, per-type rope
])
def test_other_kinds_build_and_validate(name, tmp_path):
    raw = load_config(SHARED / name).raw
    tiny = build_tiny(raw, tmp_path)
    assert tiny.validation["ok"], tiny.validation["problems"]
    assert set(tiny.layer_pattern) == set(analyze(raw).layer_pattern)
    if analyze(raw).moe:
        assert len(tiny.validation["experts"]["used"]) > 1


@pytest.mark.integration
def test_hybrid_linear_attention_builds(tmp_path):
    tiny = build_tiny(load_config("qwen3_next").raw, tmp_path)
    assert tiny.validation["ok"] and set(tiny.layer_pattern) == {"linear_attention", "full_attention"}


# -- the tiny command and the coverage bench -----------------------------------------------------------


def test_tiny_command_copies_a_validated_model(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from agent.cli.analyze import register

    monkeypatch.setenv("ONBOARD_DATA_DIR", str(tmp_path / "data"))
    app = typer.Typer()
    register(app)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["tiny", str(tmp_path / "config.json"), "--out", str(out), "--json"])
    assert got.exit_code == 0, got.output
    summary = json.loads(got.stdout)
    assert summary["validation_ok"] and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    again = CliRunner().invoke(app, ["tiny", str(tmp_path / "config.json"), "--out", str(out), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["cached"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    refused = CliRunner().invoke(app, ["tiny", "llama", "--out", str(tmp_path / "other")])
    assert refused.exit_code == 2 and "error:" in refused.output


@pytest.mark.integration
def test_bench_rows_never_raise(tmp_path):
    from tools.tiny.bench import bench_tiny_all

    res = bench_tiny_all(tmp_path, only=["llama", "not_a_type_zz"], timeout_s=300)
    rows = {r["model_type"]: r for r in res["rows"]}
    assert rows["llama"]["status"] == "ok" and rows["not_a_type_zz"]["status"] == "failed"
    assert "unknown model_type" in rows["not_a_type_zz"]["reason"]
    assert res["coverage"] == 50.0 and res["peak_rss_mb"] > 0 and res["median_seconds"] is not None
