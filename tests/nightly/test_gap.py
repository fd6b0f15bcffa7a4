"""Gap discovery against a miniature optimum-intel workspace whose registry the test edits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.errors import UserError
from agent.nightly.gap import PRIMARY_TASK, discover, select
from tools.targets.optimum_intel.target import MODEL_CONFIGS, OptimumIntelTarget
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
MAPPINGS = {
    PRIMARY_TASK: {"llama": "LlamaForCausalLM", "qwen": "QwenForCausalLM", "cwm": "CwmForCausalLM",
                   "seed_oss": "SeedOssForCausalLM"},
    "fill-mask": {"bert": "BertForMaskedLM", "llama": "LlamaForMaskedLM"},
}


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def register(ws: Path, model_type: str) -> None:
    path = ws / MODEL_CONFIGS
    path.write_text(path.read_text() + f'\n\n@register_in_tasks_manager("{model_type}", *["text-generation"])\n'
                    f"class Added{model_type.title().replace('_', '')}Config(LlamaOpenVINOConfig):\n    pass\n")


def test_gap_is_causal_types_missing_from_the_workspace_registry(ws, tmp_path):
    target = OptimumIntelTarget(tmp_path / "cache")
    gap = discover(target, ws, MAPPINGS)
    assert gap.types == ["cwm", "seed_oss"]
    register(ws, "cwm")
    assert discover(target, ws, MAPPINGS).types == ["seed_oss"]


def test_other_tasks_are_reported_not_swept(ws, tmp_path):
    gap = discover(OptimumIntelTarget(tmp_path / "cache"), ws, MAPPINGS)
    (fill,) = gap.others
    assert fill.task == "fill-mask" and fill.missing == ["bert"] and fill.known == 2
    assert fill.granularity == "type"


def test_real_transformers_mapping_on_the_fixture(ws, tmp_path):
    gap = discover(OptimumIntelTarget(tmp_path / "cache"), ws)
    assert "llama" not in gap.types and "qwen2" in gap.types and "cwm" in gap.types
    assert {g.task for g in gap.others} >= {"image-text-to-text", "fill-mask"}


def test_only_selects_and_rejects_unknown_types(ws, tmp_path):
    gap = discover(OptimumIntelTarget(tmp_path / "cache"), ws, MAPPINGS)
    causal = MAPPINGS[PRIMARY_TASK]
    assert select(gap, [], causal) == ["cwm", "seed_oss"]
    assert select(gap, ["seed_oss", "llama", "seed_oss"], causal) == ["seed_oss", "llama"]
    with pytest.raises(UserError, match="bert"):
        select(gap, ["bert"], causal)


def test_mappings_read_from_source_equal_the_imported_ones():
    from transformers.models.auto import modeling_auto

    from agent.nightly.gap import TASK_MAPPINGS, transformers_mappings

    parsed = transformers_mappings()
    for task, name in TASK_MAPPINGS.items():
        assert parsed[task] == dict(getattr(modeling_auto, name)), task


def test_types_built_with_a_supported_types_config_class_are_aliases():
    from agent.nightly.gap import config_aliases

    assert config_aliases(["code_llama", "gpt-sw3", "cwm"], {"llama", "gpt2"}) == {"code_llama": "llama",
                                                                                   "gpt-sw3": "gpt2"}
    assert config_aliases(["code_llama"], {"gpt2"}) == {}
