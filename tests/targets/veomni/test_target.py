"""The VeOmni target's planning and writing on a small fixture repository (no VeOmni stack needed)."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from tools.targets.base import JobContext
from tools.targets.veomni import hf, layout
from tools.targets.veomni.target import VeOmniTarget
from tools.targets.veomni.touch import copy_generated

HERE = Path(__file__).parent
REPO, HF = HERE / "fixtures" / "repo", HERE / "fixtures" / "hf"
PREFIX = {"llama": "Llama", "mistral": "Mistral", "qwen3_moe": "Qwen3Moe", "olmoe": "Olmoe"}
RAW = {
    "mistral": {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "hidden_size": 4096,
                "num_hidden_layers": 32, "rms_norm_eps": 1e-5, "vocab_size": 32000},
    "olmoe": {"model_type": "olmoe", "architectures": ["OlmoeForCausalLM"], "hidden_size": 2048,
              "num_hidden_layers": 16, "num_experts": 64, "num_experts_per_tok": 8, "intermediate_size": 1024,
              "norm_topk_prob": False, "vocab_size": 50304},
}
LINEAGE = {"mistral": ["llama"], "olmoe": ["gemma", "llama", "mixtral", "qwen2_moe"]}


@pytest.fixture(autouse=True)
def fixture_sources(monkeypatch):
    monkeypatch.setattr(hf, "source", lambda name: (HF / f"{name}.py").read_text() if (HF / f"{name}.py").is_file() else "")
    monkeypatch.setattr(hf, "prefix_of", lambda name: PREFIX.get(name, ""))
    monkeypatch.setattr(hf, "family", lambda mt: mt)
    monkeypatch.setattr(hf, "config_fields", lambda mt: {"num_local_experts"} if mt == "olmoe" else set())


@pytest.fixture
def ws(tmp_path):
    shutil.copytree(REPO, tmp_path / "ws")
    return tmp_path / "ws"


def analysis(mt: str) -> dict:
    return {"model_type": mt, "architectures": RAW[mt]["architectures"], "kind": "moe" if mt == "olmoe" else "dense",
            "features": ["moe"] if mt == "olmoe" else ["dense"], "lineage": LINEAGE[mt], "raw_text_config": RAW[mt]}


def test_registry_keys_and_toys_are_read_from_the_checkout(ws):
    assert VeOmniTarget(ws).supported_types(ws) == {"llama", "qwen3_moe"}
    pkgs = layout.packages(ws)
    assert pkgs["qwen3_moe"].moe and not pkgs["llama"].moe
    assert pkgs["llama"].toy == "tests/toy_config/llama31_toy" and pkgs["llama"].family == "llama"


@pytest.mark.parametrize("mt, base", [("mistral", "llama"), ("olmoe", "qwen3_moe")])
def test_closest_package_by_kind_then_lineage_then_structure(ws, mt, base):
    cands = VeOmniTarget(ws).candidates(analysis(mt), ws, 2)
    assert cands[0].base == base
    assert cands[0].params["plan"] == (["model.layers.*.mlp.experts.gate_up_proj", "model.layers.*.mlp.experts.down_proj"]
                                       if mt == "olmoe" else [])


def test_dense_apply_writes_the_package_and_touch_points(ws, tmp_path):
    t = VeOmniTarget(tmp_path)
    cand = t.candidates(analysis("mistral"), ws, 1)[0]
    applied = t.apply(cand, analysis("mistral"), ws, JobContext(model_type="mistral", work_dir=tmp_path / "w"))
    pkg = ws / "veomni/models/transformers/mistral"
    init = (pkg / "__init__.py").read_text()
    assert '@MODELING_REGISTRY.register("mistral")' in init and "patched_modeling_mistral_gpu import" in init
    cfg = (pkg / "mistral_gpu_patch_gen_config.py").read_text()
    assert 'source_module="transformers.models.mistral.modeling_mistral"' in cfg
    assert '"MistralMLP.forward"' in cfg  # the same HF code in both models: the patch is kept
    assert "MistralRMSNorm" not in cfg  # the fixture's Mistral norm differs from Llama's: dropped and reported
    assert any("MistralRMSNorm.forward" in n for n in applied.notes)
    assert not (pkg / "parallel_plan.py").exists() and not (pkg / "generated" / "patched_modeling_mistral_gpu.py").exists()
    top = (ws / "veomni/models/transformers/__init__.py").read_text()
    assert re.search(r"llama,\n    mistral,\n    qwen3_moe,", top) and '"mistral",' in top
    assert '"mistral": self._estimate_llama_flops' in (ws / "veomni/utils/count_flops.py").read_text()
    assert "mistral_toy" in (ws / "tests/models/test_model_registry.py").read_text()
    assert (ws / "tests/toy_config/mistral_toy/config.json").is_file()


def test_moe_apply_writes_plan_from_real_names_and_remaps_fields(ws, tmp_path):
    t = VeOmniTarget(tmp_path)
    cand = t.candidates(analysis("olmoe"), ws, 1)[0]
    applied = t.apply(cand, analysis("olmoe"), ws, JobContext(model_type="olmoe", work_dir=tmp_path / "w"))
    pkg = ws / "veomni/models/transformers/olmoe"
    plan = (pkg / "parallel_plan.py").read_text()
    assert '"model.layers.*.mlp.experts.gate_up_proj": Shard(0)' in plan and "shared" not in plan
    cfg = (pkg / "olmoe_gpu_patch_gen_config.py").read_text()
    assert "config.intermediate_size" in cfg and "moe_intermediate_size" not in cfg
    assert '"OlmoeExperts"' in cfg and '"OlmoeForCausalLM.get_parallel_plan"' in cfg
    assert "OlmoeModel.forward" not in cfg  # differs from Qwen3Moe's HF forward in the fixture
    assert "convert_olmoe_fqn_to_index_mapping" in (pkg / "__init__.py").read_text()
    assert '"olmoe": QWEN2_LORA_MODULES' in (ws / "veomni/lora/config.py").read_text()
    assert any("flop counter: not wired" in n for n in applied.notes)


def test_vlm_is_planned_for_an_implementer(ws):
    a = {**analysis("mistral"), "kind": "vlm", "features": ["vlm"]}
    plan = VeOmniTarget(ws).plan(a, ws)
    assert plan.needs_llm and plan.situation == "S3" and any("dummy_forward" in c for c in plan.checklist)


def test_generated_copy_refuses_links_and_other_names(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "dest"
    out.mkdir()
    (out / "patched_modeling_x_gpu.py").write_text("ok\n")
    (tmp_path / "secret").write_text("host file\n")
    (out / "patched_modeling_x_gpu.diff").symlink_to(tmp_path / "secret")
    (out / "other.py").write_text("no\n")
    assert copy_generated(out, dest, "x") == ["patched_modeling_x_gpu.py"]
    assert sorted(p.name for p in dest.iterdir()) == ["patched_modeling_x_gpu.py"]


# -- the in-sandbox plan check (pure part), with VeOmni's matcher semantics: `*` spans any characters --
def _job():
    spec = importlib.util.spec_from_file_location("veomni_job", HERE.parents[2] / "sandboxes/targets/veomni/verify.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _match(pattern, name):
    return fnmatch.fnmatchcase(name, pattern)


SHAPES = {f"model.layers.{i}.mlp.{p}": s for i in range(2) for p, s in (
    ("experts.gate_up_proj", [8, 64, 32]), ("experts.down_proj", [8, 32, 32]),
    ("shared_expert.gate_proj.weight", [64, 32]), ("gate.weight", [8, 32]))}
EXPERTS = {f"model.layers.{i}.mlp.experts": [f"model.layers.{i}.mlp.experts.gate_up_proj",
                                             f"model.layers.{i}.mlp.experts.down_proj"] for i in range(2)}
GOOD = {"model.layers.*.mlp.experts.gate_up_proj": 0, "model.layers.*.mlp.experts.down_proj": 0}


def test_plan_on_real_names_passes():
    problems, shapes = _job().plan_problems(GOOD, SHAPES, EXPERTS, [1, 2, 4, 8], _match)
    assert problems == [] and shapes["model.layers.*.mlp.experts.gate_up_proj"] == [8, 64, 32]


def test_wrong_prefix_is_caught():
    bad = {k.replace("model.layers", "model.language_model.layers"): v for k, v in GOOD.items()}
    problems, _ = _job().plan_problems(bad, SHAPES, EXPERTS, [2], _match)
    assert any("matches no parameter" in p for p in problems)
    assert any("left unsharded" in p for p in problems)


def test_sharding_a_shared_expert_or_gate_is_caught():
    for extra in ("model.layers.*.mlp.shared_expert.gate_proj.weight", "model.layers.*.mlp.gate.weight"):
        problems, _ = _job().plan_problems({**GOOD, extra: 0}, SHAPES, EXPERTS, [2], _match)
        assert any("outside the routed experts" in p for p in problems), extra


def test_ep_size_must_divide_and_one_parameter_per_layer():
    problems, _ = _job().plan_problems(GOOD, SHAPES, EXPERTS, [3], _match)
    assert any("does not divide by EP [3]" in p for p in problems)
    problems, _ = _job().plan_problems({"model.layers.*.mlp.experts.*": 0}, SHAPES, EXPERTS, [2], _match)
    assert any("matches 2 parameters" in p for p in problems)
