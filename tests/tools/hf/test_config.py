"""Config loading, malformed input, classification of real configs, layer-pattern normalisation."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tools.hf.config import Analysis, ConfigError, analyze, load_config
from tools.hf.modular import modular_lineage
from tools.hf.facts import layer_pattern
from tests import TESTS

SHARED = TESTS / "data" / "hf_configs"  # copies of published configs
EXPECTED = json.loads((TESTS / "data" / "expected_analysis.json").read_text())
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}


# -- loading -----------------------------------------------------------------------------------------


def test_load_from_file_and_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    by_file = load_config(tmp_path / "config.json")
    by_dir = load_config(str(tmp_path))
    assert by_file.origin == "file" and by_dir.origin == "dir"
    assert by_file.raw == by_dir.raw == LLAMA
    assert by_dir.source == str((tmp_path / "config.json").resolve())


def test_load_from_model_type_uses_the_default_config():
    loaded = load_config("qwen2")
    assert loaded.origin == "model_type" and loaded.raw["model_type"] == "qwen2"
    assert loaded.raw["architectures"] == ["Qwen2ForCausalLM"]
    json.dumps(loaded.raw)  # must be plain JSON


def test_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE|unreachable"):
        load_config("some-org/some-model-that-is-not-cached")
    assert time.monotonic() - start < 5


def test_modelopt_quant_config_beside_config_is_attached(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "NVFP4"}}))
    analysis = analyze(load_config(tmp_path).raw)
    assert analysis.quantization["quant_algo"] == "NVFP4"


MALFORMED = {
    "not_json": "{ this is not json",
    "not_object": "[1, 2, 3]",
    "missing_model_type": json.dumps({"hidden_size": 64}),
    "model_type_not_string": json.dumps({"model_type": 7}),
    "hidden_size_string": json.dumps({**LLAMA, "hidden_size": "64"}),
    "layers_float": json.dumps({**LLAMA, "num_hidden_layers": 2.5}),
    "negative_heads": json.dumps({**LLAMA, "num_attention_heads": -4}),
    "zero_vocab": json.dumps({**LLAMA, "vocab_size": 0}),
    "bool_as_size": json.dumps({**LLAMA, "hidden_size": True}),
    "nested_text_not_object": json.dumps({**LLAMA, "text_config": "oops"}),
    "nested_bad_size": json.dumps({**LLAMA, "text_config": {"hidden_size": -1}}),
    "layer_types_not_list": json.dumps({**LLAMA, "layer_types": "full_attention"}),
    "architectures_not_list": json.dumps({**LLAMA, "architectures": "LlamaForCausalLM"}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_files_are_one_line_config_errors(tmp_path, case):
    path = tmp_path / "config.json"
    path.write_text(MALFORMED[case])
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and str(info.value)


def test_ten_megabytes_of_junk_is_refused_without_parsing(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\x00\xff" * (5 * 1024 * 1024))
    start = time.monotonic()
    with pytest.raises(ConfigError, match="too large"):
        load_config(path)
    assert time.monotonic() - start < 1


def test_binary_junk_small_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="UTF-8|JSON"):
        load_config(path)


@pytest.mark.parametrize("source", ["not_a_model_type_xyz", "llamma", "", "./missing/config.json",
                                    "no such thing with spaces"])
def test_unresolvable_sources(source):
    with pytest.raises(ConfigError) as info:
        load_config(source)
    assert "\n" not in str(info.value)


def test_unknown_model_type_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean .*llama"):
        load_config("llamma")


def test_config_error_is_a_user_error():
    from tools.errors import UserError

    assert issubclass(ConfigError, UserError) and ConfigError("x").exit_code == 2


# -- classification of the shared real configs -------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("name", sorted(k for k in EXPECTED if not k.startswith("_")))
def test_shared_configs_classified_as_read_by_hand(name):
    want = EXPECTED[name]
    if "error" in want:
        with pytest.raises(ConfigError, match=want["error"]):
            load_config(SHARED / name)
        return
    a = analyze(load_config(SHARED / name).raw)
    assert a.model_type == want["model_type"]
    assert a.kind == want["kind"], a.features
    assert a.features == sorted(want["features"])
    assert a.num_layers == want["num_layers"] == len(a.layer_pattern)
    assert dict(Counter(a.layer_pattern)) == want["layer_counts"]
    assert (a.mla is not None) == want["mla"]
    assert (a.quantization is not None) == want["quantized"]
    for key in ("num_experts", "top_k", "first_k_dense"):
        if key in want:
            assert a.moe[key] == want[key], key
    for key in ("sliding_window", "text_config_key"):
        if key in want:
            assert getattr(a, key) == want[key], key


@needs_shared
def test_every_shared_config_file_is_covered_by_the_expectations():
    assert {p.name for p in SHARED.glob("*.json")} == {k for k in EXPECTED if not k.startswith("_")}


@needs_shared
def test_analysis_is_a_stable_json_contract():
    a = analyze(load_config(SHARED / "deepseek-ai--DeepSeek-V3_config.json").raw)
    data = json.loads(a.model_dump_json())
    assert set(data) == set(Analysis.model_fields)
    assert data["mla"] == {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
                           "qk_rope_head_dim": 64, "v_head_dim": 128}
    assert data["moe"]["num_shared_experts"] == 1 and data["moe"]["router_bias"] is True
    assert data["rope"]["type"] == "yarn" and data["rope"]["factor"] == 40
    assert data["quantization"]["quant_method"] == "fp8"
    assert data["lineage"][:1] == ["llama"]


def test_lineage_follows_the_modular_file():
    assert modular_lineage("cwm")[:2] == ["llama", "qwen2"]
    assert modular_lineage("llama") == []  # no modular file
    assert "qwen3_next" in modular_lineage("qwen3_5_text")


# -- layer-pattern normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize("extra, want", [
    ({"layer_types": ["linear_attention", "linear_attention", "full_attention", "full_attention"]},
     ["linear_attention", "linear_attention", "full_attention", "full_attention"]),
    ({"full_attention_interval": 2}, ["linear_attention", "full_attention"] * 2),
    ({"sliding_window": 16, "sliding_window_pattern": 4}, ["sliding_attention"] * 3 + ["full_attention"]),
    ({"hybrid_override_pattern": "M*E-"}, ["mamba", "attention", "moe", "mlp"]),
    ({"attn_layer_period": 2, "attn_layer_offset": 1}, ["mamba", "attention"] * 2),
    ({"block_types": ["recurrent", "attention"]}, ["recurrent", "attention"] * 2),
    ({"linear_attn_config": {"full_attn_layers": [4], "kda_layers": [1, 2, 3]}},
     ["linear_attention"] * 3 + ["full_attention"]),
    ({"sliding_window": 16}, ["sliding_attention"] * 4),
    ({"sliding_window": 16, "use_sliding_window": False}, ["full_attention"] * 4),
    ({"sliding_window": 16, "use_sliding_window": True, "max_window_layers": 2},
     ["full_attention"] * 2 + ["sliding_attention"] * 2),
    ({"attention_chunk_size": 8}, ["chunked_attention"] * 3 + ["full_attention"]),
    ({}, ["full_attention"] * 4),
])
def test_layer_pattern_normalisation(extra, want):
    assert layer_pattern({"model_type": "x", "num_hidden_layers": 4, **extra}) == want


def test_list_and_interval_spellings_agree():
    as_list = {"model_type": "x", "num_hidden_layers": 8,
               "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2}
    as_interval = {"model_type": "x", "num_hidden_layers": 8, "full_attention_interval": 4}
    assert analyze(as_list).layer_pattern == analyze(as_interval).layer_pattern
    assert analyze(as_interval).kind == "hybrid"


def test_pure_ssm_and_hybrids():
    assert analyze({"model_type": "mamba", "num_hidden_layers": 3, "hidden_size": 8}).kind == "ssm"
    jamba = analyze({"model_type": "jamba", "num_hidden_layers": 4, "attn_layer_period": 2, "attn_layer_offset": 1,
                     "num_experts": 4, "num_experts_per_tok": 2})
    assert jamba.kind == "hybrid" and {"ssm", "moe"} <= set(jamba.features)


# -- the analyze command -----------------------------------------------------------------------------


def _cli():
    import typer

    from agent.cli.analyze import register

    app = typer.Typer()
    register(app)
    return app


def test_analyze_command_json_and_table(tmp_path):
    from typer.testing import CliRunner

    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    runner = CliRunner()
    got = runner.invoke(_cli(), ["analyze", str(tmp_path), "--json", "--target", "optimum-intel"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.stdout)
    assert data["model_type"] == "llama" and data["kind"] == "dense" and data["target"] == "optimum-intel"
    table = runner.invoke(_cli(), ["analyze", "qwen3_next"])
    assert table.exit_code == 0 and "linear_attention" in table.stdout and "hybrid" in table.stdout


@pytest.mark.parametrize("arg", ["no_such_model_type_zz", "/nonexistent/config.json"])
def test_analyze_command_bad_input_is_one_line_exit_2(arg):
    from typer.testing import CliRunner

    got = CliRunner().invoke(_cli(), ["analyze", arg])
    assert got.exit_code == 2
    lines = [ln for ln in got.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in got.output
