"""Registry read/write by ast, and the model directory derived from the fixture's qwen3_moe."""

from __future__ import annotations

import ast

import pytest

from tests.targets.nemo_automodel.helpers import fixture_repo
from tools.targets.nemo_automodel.derive import DeriveError, Names, derive, write
from tools.targets.nemo_automodel.registry import (REGISTRY, RegistryError, add_arch, add_custom_config, arch_mapping,
                                                    custom_configs)

QWEN2 = Names("qwen3_moe", "Qwen3Moe", "qwen2_moe", "Qwen2Moe")
EDITS = [("drop_qk_norm", {}), ("projection_bias", {"qkv": "qkv_bias", "out": "False"}),
         ("shared_expert", {"hf_name": "shared_expert", "gated": True})]
MOD = "nemo_automodel.components.models.qwen2_moe.model"


def test_registry_is_read_and_one_entry_is_added_in_the_files_format(tmp_path):
    ws = fixture_repo(tmp_path)
    assert arch_mapping(ws)["Qwen3MoeForCausalLM"] == ("nemo_automodel.components.models.qwen3_moe.model",
                                                        "Qwen3MoeForCausalLM")
    assert custom_configs(ws) == {"laguna": ("nemo_automodel.components.models.laguna.config", "LagunaConfig")}
    before = (ws / REGISTRY).read_text()
    assert add_arch(ws, "Qwen2MoeForCausalLM", MOD, "Qwen2MoeForCausalLM") is True
    after = (ws / REGISTRY).read_text()
    assert list(arch_mapping(ws))[-1] == "Qwen2MoeForCausalLM"
    assert after.startswith(before.split("    ]\n)")[0])  # appended inside the list, nothing else moved
    assert add_arch(ws, "Qwen2MoeForCausalLM", MOD, "Qwen2MoeForCausalLM") is False  # idempotent
    with pytest.raises(RegistryError, match="already registered"):
        add_arch(ws, "Qwen2MoeForCausalLM", "elsewhere", "X")
    assert add_custom_config(ws, "new_type", "m.config", "NewConfig") is True
    assert custom_configs(ws)["new_type"] == ("m.config", "NewConfig")


def test_a_checkout_without_the_registry_is_refused(tmp_path):
    with pytest.raises(RegistryError, match="is this NeMo AutoModel"):
        arch_mapping(tmp_path)


def test_derived_directory_drops_qk_norm_sets_biases_and_maps_the_shared_expert(tmp_path):
    ws = fixture_repo(tmp_path)
    derived = derive(ws, QWEN2, EDITS)
    files = write(ws, derived)
    base = "nemo_automodel/components/models/qwen2_moe/"
    assert files == [base + f for f in ("__init__.py", "layers.py", "model.py", "state_dict_adapter.py")]
    layers = (ws / base / "layers.py").read_text()
    assert "q_norm" not in layers and "k_norm" not in layers and "Qwen3" not in layers
    assert "qkv_bias = config.qkv_bias" in layers and "out_bias = False" in layers
    assert layers.count("qkv_bias, dtype=dtype") == 3 and layers.count("out_bias, dtype=dtype") == 1
    assert "configuration_qwen2_moe import Qwen2MoeConfig" in layers
    model = (ws / base / "model.py").read_text()
    assert "shared_expert_gate=True" in model and 'getattr(config, "shared_expert_intermediate_size", 0)' in model
    adapter = (ws / base / "state_dict_adapter.py").read_text()
    assert "'.mlp.shared_expert.', '.mlp.shared_experts.'" in adapter  # from_hf
    assert "'.mlp.shared_experts.', '.mlp.shared_expert.'" in adapter  # to_hf
    for f in files:
        ast.parse((ws / f).read_text())
    assert not (ws / "nemo_automodel/components/models/qwen3_moe/layers.py").read_text().count("qkv_bias")


def test_a_moved_anchor_stops_the_derivation_with_the_reason(tmp_path):
    ws = fixture_repo(tmp_path)
    layers = ws / "nemo_automodel/components/models/qwen3_moe/layers.py"
    layers.write_text(layers.read_text().replace("        # Per-head RMSNorm\n        q = self.q_norm(q)", "        q = self.q_norm(q)"))
    with pytest.raises(DeriveError, match="drop qk-norm forward"):
        derive(ws, QWEN2, EDITS)
    broken = fixture_repo(tmp_path / "c")
    layers = broken / "nemo_automodel/components/models/qwen3_moe/layers.py"
    layers.write_text(layers.read_text().replace("        self.q_proj.reset_parameters()\n", ""))
    with pytest.raises(DeriveError, match="invalid Python"):
        derive(broken, QWEN2, EDITS)  # init_weights would be left with no body
    with pytest.raises(DeriveError, match="no edit named"):
        derive(fixture_repo(tmp_path / "b"), QWEN2, [("rewrite_everything", {})])
    with pytest.raises(DeriveError, match="not in the workspace"):
        derive(ws, Names("absent", "Absent", "x", "X"), EDITS)
