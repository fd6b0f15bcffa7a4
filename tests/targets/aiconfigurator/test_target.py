"""aiconfigurator target on the fixture repository: situations with evidence, deterministic writes, checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.targets.aiconfigurator.helpers import (COMMON, UTILS, analysis_of, fixture_repo, parse_in_fixture,
                                                  pytest_in_fixture, remove_line)
from tools.targets.aiconfigurator import Target
from tools.targets.aiconfigurator import registry as regmod
from tools.targets.aiconfigurator.checks import family_fit
from tools.targets.base import JobContext

QWEN3_NEXT = "Qwen--Qwen3-Next-80B-A3B-Instruct_config.json"
STEP = "stepfun-ai--Step-3.7-Flash_config.json"
MIMO = "XiaomiMiMo--MiMo-7B-Base_config.json"
QWEN3_MOE = "Qwen--Qwen3-30B-A3B_config.json"


@pytest.fixture
def ws(tmp_path):
    return fixture_repo(tmp_path)


def target(tmp_path, hf_id=None):
    return Target(tmp_path / "cache", hf_id=hf_id)


def ctx(tmp_path):
    return JobContext(model_type="x", work_dir=tmp_path / "work")


def test_registry_reads_the_literals_and_the_parser_branches(ws):
    reg = regmod.read(ws)
    assert reg.arch_to_family["MiMoForCausalLM"] == "LLAMA" and "STEP3P7" not in reg.families
    assert reg.retired_models == {"zai-org/GLM-5"} and "zai-org/GLM-5" in reg.default_models
    q35 = reg.branch_for("Qwen3_5MoeForConditionalGeneration")
    assert "linear_conv_kernel_dim" in q35.required and "layer_types" in q35.optional
    assert reg.moe_families == {"MOE", "DEEPSEEK", "HYBRIDMOE", "GEMMA4MIX"}


def test_a_checkout_without_the_sdk_is_a_one_line_error(tmp_path):
    with pytest.raises(regmod.RegistryError, match="no aiconfigurator SDK"):
        regmod.read(tmp_path)


def test_qwen3_next_is_s2_the_scalar_layer_interval_decides(ws, tmp_path):
    plan = target(tmp_path).plan(analysis_of(QWEN3_NEXT), ws)
    assert plan.situation == "S2" and not plan.needs_llm
    text = "\n".join(plan.notes)
    assert "36 linear_attention, 12 full_attention" in text and "chosen family: QWEN35" in text
    assert "full_attention_interval" in text and "shared expert" in text


def test_qwen3_next_with_a_per_layer_list_joins_the_branch_as_s1(ws, tmp_path):
    raw = json.loads((Path(__file__).parent / "data" / QWEN3_NEXT).read_text())
    raw["layer_types"] = ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(48)]
    t = target(tmp_path)
    assert t.plan(analysis_of(raw), ws).situation == "S1"
    [cand] = t.candidates(analysis_of(raw), ws, 3)
    assert cand.id == "family:QWEN35:join"


def test_apply_qwen3_next_writes_branch_config_default_and_a_passing_test(ws, tmp_path):
    t = target(tmp_path, hf_id="Qwen/Qwen3-Next-80B-A3B-Instruct")
    a = analysis_of(QWEN3_NEXT)
    [cand] = t.candidates(a, ws, 3)
    applied = t.apply(cand, a, ws, ctx(tmp_path))
    cfg = "aic-core/src/aiconfigurator_core/model_configs/Qwen--Qwen3-Next-80B-A3B-Instruct_config.json"
    assert set(applied.files) == {COMMON, UTILS, cfg, "tests/unit/sdk/test_utils.py"}
    reg = regmod.read(ws)
    assert reg.arch_to_family["Qwen3NextForCausalLM"] == "QWEN35"
    assert "Qwen/Qwen3-Next-80B-A3B-Instruct" in reg.default_models
    assert reg.branch_for("Qwen3NextForCausalLM").archs == ["Qwen3NextForCausalLM"]
    # The written branch, run: the scalar interval becomes 36 linear + 12 full layers.
    parsed = parse_in_fixture(ws, json.loads((ws / cfg).read_text()))
    assert (parsed["layers"], parsed["n_kv"], parsed["d"], parsed["num_experts"]) == (48, 2, 256, 512)
    assert parsed["extra_params"].count("full_attention") == 12 and parsed["extra_params"][3] == "full_attention"
    proc = pytest_in_fixture(ws, "tests/unit/sdk/test_utils.py")
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout + proc.stderr
    assert family_fit(reg, "Qwen3NextForCausalLM", a).status == "passed"


def test_apply_twice_changes_nothing_more(ws, tmp_path):
    t = target(tmp_path, hf_id="Qwen/Qwen3-Next-80B-A3B-Instruct")
    a = analysis_of(QWEN3_NEXT)
    [cand] = t.candidates(a, ws, 3)
    t.apply(cand, a, ws, ctx(tmp_path))
    before = {p: (ws / p).read_text() for p in (COMMON, UTILS, "tests/unit/sdk/test_utils.py")}
    t.apply(cand, a, ws, ctx(tmp_path))
    assert before == {p: (ws / p).read_text() for p in before}


def test_without_a_checkpoint_id_config_and_default_are_skipped_with_a_note(ws, tmp_path):
    t = target(tmp_path)
    a = analysis_of(QWEN3_NEXT)
    [cand] = t.candidates(a, ws, 3)
    applied = t.apply(cand, a, ws, ctx(tmp_path))
    assert not any(f.endswith("_config.json") for f in applied.files)
    assert any("no checkpoint id" in n for n in applied.notes)
    assert "Qwen/Qwen3-Next-80B-A3B-Instruct" not in regmod.read(ws).default_models


def test_registration_only_model_is_re_onboarded_to_the_family_upstream_chose(ws, tmp_path):
    remove_line(ws, COMMON, '"MiMoForCausalLM": "LLAMA"')
    failing = pytest_in_fixture(ws, "tests/unit/sdk/test_model_config.py")
    assert failing.returncode != 0 and "MiMoForCausalLM" in failing.stdout  # the repository's test sees the gap
    t = target(tmp_path, hf_id="XiaomiMiMo/MiMo-7B-Base")
    a = analysis_of(MIMO)
    assert "mimo" not in t.supported_types(ws)
    plan = t.plan(a, ws)
    assert plan.situation == "S1" and "chosen family: LLAMA (S1)" in plan.notes
    [cand] = t.candidates(a, ws, 3)
    applied = t.apply(cand, a, ws, ctx(tmp_path))
    assert regmod.read(ws).arch_to_family["MiMoForCausalLM"] == "LLAMA"
    assert any("already packaged" in n for n in applied.notes)  # the packaged config is left as it was
    assert any("MTP" in n for n in applied.notes)  # LLAMA prices it without speculative decoding: said so
    assert pytest_in_fixture(ws, "tests/unit/sdk/test_model_config.py").returncode == 0
    assert "mimo" in t.supported_types(ws)


def test_step_3p7_on_a_checkout_without_its_family_is_s3_with_reasons(ws, tmp_path):
    t = target(tmp_path)
    a = analysis_of(STEP)
    plan = t.plan(a, ws)
    assert plan.situation == "S3" and plan.needs_llm
    text = "\n".join(plan.notes)
    assert "12 full_attention, 33 sliding_attention" in text  # sliding and global attention
    assert "does not price the shared expert" in text and "MTP" in text
    assert any("its own scale" in c for c in plan.checklist) and any("deferred" in c for c in plan.checklist)
    [cand] = t.candidates(a, ws, 3)
    assert cand.id.endswith(":s3")  # a scaffold for the implementer, never a finished candidate


def test_s3_scaffold_fails_the_family_check(ws, tmp_path):
    t = target(tmp_path)
    a = analysis_of(STEP)
    [cand] = t.candidates(a, ws, 3)
    applied = t.apply(cand, a, ws, ctx(tmp_path))
    assert any("needs an implementer" in n for n in applied.notes)
    check = family_fit(regmod.read(ws), "Step3p7FlashForCausalLM", a)
    assert check.status == "failed" and "shared expert" in check.detail


def test_a_dense_family_for_a_moe_model_is_caught(ws, tmp_path):
    remove_line(ws, COMMON, '"Qwen3MoeForCausalLM": "MOE"')
    t = target(tmp_path)
    a = analysis_of(QWEN3_MOE)
    assert [c.params["family"] for c in t.candidates(a, ws, 3)] == ["MOE"]
    wrong = t.candidates(a, ws, 3)[0].model_copy(update={"params": {"family": "LLAMA", "arch": "Qwen3MoeForCausalLM"}})
    t.apply(wrong, a, ws, ctx(tmp_path))
    check = family_fit(regmod.read(ws), "Qwen3MoeForCausalLM", a)
    assert check.status == "failed" and "has no MoE FFN" in check.detail


def test_default_models_keep_the_retired_subset_the_module_asserts(ws):
    from tools.targets.aiconfigurator import writer

    common = ws / COMMON
    common.write_text(common.read_text().replace('\n    "zai-org/GLM-5",\n', "\n", 1))  # from DefaultHFModels only
    reg = regmod.read(ws)
    assert "zai-org/GLM-5" in reg.retired_models and "zai-org/GLM-5" not in reg.default_models
    with pytest.raises(regmod.RegistryError, match="zai-org/GLM-5"):
        writer.add_default_model(ws, reg, "org/Other-Model")
    writer.add_default_model(ws, regmod.read(ws), "zai-org/GLM-5")  # re-adding the retired id restores it
    assert regmod.read(ws).retired_models <= regmod.read(ws).default_models


def test_gap_lists_causal_lm_types_whose_classes_are_unmapped(ws, tmp_path):
    mappings = {"text-generation": {"llama": "LlamaForCausalLM", "qwen3_next": "Qwen3NextForCausalLM",
                                    "mimo": ("MiMoForCausalLM",)}}
    assert target(tmp_path).gap(ws, mappings) == ["qwen3_next"]


def test_pr_meta_names_the_architecture_and_family(ws, tmp_path):
    t = target(tmp_path)
    a = analysis_of(QWEN3_NEXT)
    [cand] = t.candidates(a, ws, 3)
    meta = t.pr_meta(a, cand, ws)
    assert meta.key == "qwen3_next" and "Qwen3NextForCausalLM" in meta.title and "QWEN35" in meta.title
    assert not any("/work" in r or "/tmp" in r for r in meta.reproduce)


def test_a_vlm_with_nested_text_config_is_s2_and_registers_the_nesting(ws, tmp_path):
    layer_types = ["linear_attention"] * 3 + ["full_attention"]
    raw = {"architectures": ["Qwen3_6MoeForConditionalGeneration"], "model_type": "qwen3_6_moe",
           "vision_config": {"depth": 2, "hidden_size": 64},
           "text_config": {"model_type": "qwen3_6_moe_text", "num_hidden_layers": 8, "hidden_size": 1024,
                           "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 128,
                           "vocab_size": 1000, "max_position_embeddings": 4096, "layer_types": layer_types * 2,
                           "linear_num_key_heads": 8, "linear_key_head_dim": 64, "linear_num_value_heads": 16,
                           "linear_value_head_dim": 64, "linear_conv_kernel_dim": 4, "num_experts": 16,
                           "num_experts_per_tok": 2, "moe_intermediate_size": 256,
                           "shared_expert_intermediate_size": 256},
           "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    t = target(tmp_path, hf_id="org/Qwen3.6-MoE")
    a = analysis_of(raw)
    plan = t.plan(a, ws)
    assert plan.situation == "S2" and any("MULTIMODAL_TEXT_CONFIG_KEY" in n for n in plan.notes)
    assert any(n.startswith("quantization") for n in plan.notes)
    [cand] = t.candidates(a, ws, 3)
    t.apply(cand, a, ws, ctx(tmp_path))
    reg = regmod.read(ws)
    assert reg.text_config_key["Qwen3_6MoeForConditionalGeneration"] == "text_config"
    assert "Qwen3_6MoeForConditionalGeneration" in reg.branch_for("Qwen3_5MoeForConditionalGeneration").archs
    packaged = json.loads((ws / reg.configs_dir / "org--Qwen3.6-MoE_config.json").read_text())
    parsed = parse_in_fixture(ws, packaged)
    assert parsed["layers"] == 8 and parsed["extra_params"].count("full_attention") == 2
    assert pytest_in_fixture(ws, "tests/unit/sdk/test_utils.py").returncode == 0
