"""Plan, candidates and apply of the nemo-automodel target on the fixture repository."""

from __future__ import annotations

import ast
import json

from tests.targets.nemo_automodel.helpers import DATA, QWEN2_MOE, QWEN3_DENSE, QWEN3_MOE, analysis_of, fixture_repo
from tools.targets.base import JobContext
from tools.targets.nemo_automodel import Target
from tools.targets.nemo_automodel.registry import arch_mapping


def _target(tmp_path):
    return Target(tmp_path / "cache")


def test_qwen2_moe_is_derived_from_qwen3_moe_and_the_plan_names_the_differences(tmp_path):
    ws, target, analysis = fixture_repo(tmp_path), _target(tmp_path), analysis_of(QWEN2_MOE)
    assert "qwen2_moe" not in target.supported_types(ws) and "qwen3_moe" in target.supported_types(ws)
    plan = target.plan(analysis, ws)
    assert plan.situation == "S2" and not plan.needs_llm
    assert any("closest implementation: qwen3_moe" in n for n in plan.notes)
    assert any(n.startswith("differs: shared_expert_gate") and "F.sigmoid(self.shared_expert_gate" in n for n in plan.notes)
    [cand] = target.candidates(analysis, ws, 3)  # the deprecated llama is never a base
    assert cand.id == "derive:qwen3_moe" and set(cand.patterns) == {"shared_expert", "drop_qk_norm", "projection_bias"}


def test_apply_writes_directory_registry_tests_recipe_and_docs(tmp_path):
    ws, target, analysis = fixture_repo(tmp_path), _target(tmp_path), analysis_of(QWEN2_MOE)
    [cand] = target.candidates(analysis, ws, 3)
    ctx = JobContext(model_type="qwen2_moe", work_dir=tmp_path / "work")
    applied = target.apply(cand, analysis, ws, ctx)
    assert arch_mapping(ws)["Qwen2MoeForCausalLM"] == ("nemo_automodel.components.models.qwen2_moe.model",
                                                        "Qwen2MoeForCausalLM")
    test = ws / "tests/unit_tests/models/qwen2_moe/test_qwen2_moe_state_dict_adapter.py"
    assert str(test.relative_to(ws)) in applied.files and (test.parent / "__init__.py").is_file()
    tree = ast.parse(test.read_text())
    tiny = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "TINY")
    assert tiny["model_type"] == "qwen2_moe" and tiny["shared_expert_intermediate_size"] == 48
    assert "from nemo_automodel.components.models.qwen2_moe.model import Qwen2MoeForCausalLM" in test.read_text()
    assert "N_EXPERTS = 4" in test.read_text()
    recipe = ws / "examples/llm_finetune/qwen/qwen1_5_moe_a2_7b_hellaswag.yaml"
    assert "pretrained_model_name_or_path: Qwen/Qwen1.5-MoE-A2.7B" in recipe.read_text()
    page = (ws / "docs/model-coverage/llm/qwen/qwen2-moe.mdx").read_text()
    recipes = page.split("## Example Recipes")[1].split("## Fine-Tuning")[0]
    assert "qwen1_5_moe_a2_7b_hellaswag.yaml" in recipes and "Text after the table." in page
    assert not any(str(tmp_path) in n for n in applied.notes)


def test_dense_qwen3_untied_is_an_alias_of_qwen3_moe(tmp_path):
    ws, target, analysis = fixture_repo(tmp_path), _target(tmp_path), analysis_of(QWEN3_DENSE)
    plan = target.plan(analysis, ws)
    assert plan.situation == "S1" and not plan.needs_llm
    cand = target.candidates(analysis, ws, 3)[0]
    assert cand.id == "alias:qwen3_moe"
    applied = target.apply(cand, analysis, ws, JobContext(model_type="qwen3", work_dir=tmp_path / "w"))
    assert arch_mapping(ws)["Qwen3ForCausalLM"] == ("nemo_automodel.components.models.qwen3_moe.model",
                                                     "Qwen3MoeForCausalLM")
    assert not (ws / "nemo_automodel/components/models/qwen3").exists()  # an alias writes no model code
    assert any("no checkpoint id" in n for n in applied.notes)  # Qwen3-8B's config has no _name_or_path


def test_tied_embeddings_on_an_untied_only_base_go_to_the_implementer(tmp_path):
    ws, target = fixture_repo(tmp_path), _target(tmp_path)
    analysis = analysis_of(DATA / "Qwen--Qwen3-0.6B_config.json")
    assert json.loads((DATA / "Qwen--Qwen3-0.6B_config.json").read_text())["tie_word_embeddings"] is True
    plan = target.plan(analysis, ws)
    assert plan.needs_llm and any("TieSupport.UNTIED_ONLY" in n for n in plan.notes)
    assert target.candidates(analysis, ws, 3) == []


def test_a_vlm_is_planned_for_the_implementer(tmp_path):
    ws, target = fixture_repo(tmp_path), _target(tmp_path)
    analysis = analysis_of(QWEN3_MOE)
    analysis.update(kind="vlm", text_config_key="text_config")
    plan = target.plan(analysis, ws)
    assert plan.needs_llm and any(n.startswith("VLM:") for n in plan.notes)
    assert target.candidates(analysis, ws, 3) == []


def test_an_unregistered_implementation_of_the_architecture_is_registered_as_is(tmp_path):
    ws, target, analysis = fixture_repo(tmp_path), _target(tmp_path), analysis_of(QWEN3_DENSE)
    own = ws / "nemo_automodel/components/models/qwen3"
    own.mkdir()
    (own / "__init__.py").write_text("")
    (own / "model.py").write_text('"""Fixture: present but unregistered."""\n\nModelClass = Qwen3ForCausalLM\n')
    cand = target.candidates(analysis, ws, 3)[0]
    assert cand.id == "alias:qwen3" and cand.params["module"] == "nemo_automodel.components.models.qwen3.model"


def test_existing_adapter_tests_are_never_replaced(tmp_path):
    ws, target, analysis = fixture_repo(tmp_path), _target(tmp_path), analysis_of(QWEN2_MOE)
    existing = ws / "tests/unit_tests/models/qwen2_moe/test_qwen2_moe_state_dict_adapter.py"
    existing.parent.mkdir(parents=True)
    existing.write_text("# the repository's own\n")
    [cand] = target.candidates(analysis, ws, 3)
    applied = target.apply(cand, analysis, ws, JobContext(model_type="qwen2_moe", work_dir=tmp_path / "w"))
    assert existing.read_text() == "# the repository's own\n"
    assert any("exists: kept" in n for n in applied.notes)
