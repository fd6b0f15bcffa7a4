"""The normalized-args remap: a base whose normalized config is already `NormalizedTextConfig.with_args(...)`
(Mistral's names num_key_value_heads) gets its mapping pointed at the keys the new model's config has."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.normalized_args import NORMALIZED_ARGS
from tools.targets.optimum_intel.search import search
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
# upstream's MistralOpenVINOConfig and GPTNeo's (whose config says num_heads), as the miniature needs them
BASES = '''

@register_in_tasks_manager("mistral", *["text-generation", "text-generation-with-past"], library_name="transformers")
class MistralOpenVINOConfig(TextDecoderWithPositionIdsOpenVINOConfig):
    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig.with_args(num_key_value_heads="num_key_value_heads", allow_new=True)
    DUMMY_INPUT_GENERATOR_CLASSES = (MistralDummyPastKeyValuesGenerator,) + TextDecoderOpenVINOConfig.DUMMY_INPUT_GENERATOR_CLASSES
    DUMMY_PKV_GENERATOR_CLASS = MistralDummyPastKeyValuesGenerator


class HeadsOpenVINOConfig(TextDecoderWithPositionIdsOpenVINOConfig):
    NORMALIZED_CONFIG_CLASS = NormalizedTextConfig.with_args(num_attention_heads="num_heads")
'''
# multi-head attention with no num_key_value_heads field (CPM-Ant, ProphetNet, BigBird are of this kind)
MHA = {"model_type": "toy_mha", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
       "vocab_size": 100}


@pytest.fixture
def ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES, root, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    configs = root / CONFIGS
    configs.write_text(configs.read_text() + BASES)
    return root


def ctx(ws: Path, base: str, model_type: str, raw: dict | None = None) -> PatternContext:
    raw = raw if raw is not None else AutoConfig.for_model(model_type).to_dict()
    out = analyze(raw).model_dump(mode="json")
    out["raw_text_config"] = raw
    return PatternContext(out, ws, base)


def test_mistral_base_remaps_key_value_heads_the_config_lacks(ws):
    c = ctx(ws, "MistralOpenVINOConfig", "toy_mha", MHA)
    why = NORMALIZED_ARGS.precondition(c)
    assert "num_key_value_heads from `num_attention_heads` (the base reads `num_key_value_heads`)" in why
    assert [n for n, _ in applicable(c)] == ["normalized_args_remap"]
    edit = combined_edit(c, ["normalized_args_remap"])
    assert edit.class_attrs["NORMALIZED_CONFIG_CLASS"] == \
        'NormalizedTextConfig.with_args(num_key_value_heads="num_attention_heads", allow_new=True)'


def test_names_the_config_answers_stay_as_the_base_wrote_them(ws):
    # mistral's own config has num_key_value_heads: nothing to remap
    assert NORMALIZED_ARGS.precondition(ctx(ws, "MistralOpenVINOConfig", "mistral")) is None
    # a base reading num_heads, on a config saying num_attention_heads, is pointed at it
    edit = combined_edit(ctx(ws, "HeadsOpenVINOConfig", "toy_mha", MHA), ["normalized_args_remap"])
    assert edit.class_attrs["NORMALIZED_CONFIG_CLASS"] == \
        'NormalizedTextConfig.with_args(num_attention_heads="num_attention_heads")'
    # plain NormalizedTextConfig bases stay normalized_config_mapping's; nested text configs neither's
    assert NORMALIZED_ARGS.precondition(ctx(ws, "GPTNeoOpenVINOConfig", "toy_mha", MHA)) is None
    nested = ctx(ws, "MistralOpenVINOConfig", "toy_mha", MHA)
    nested.analysis["text_config_key"] = "text_config"
    assert NORMALIZED_ARGS.precondition(nested) is None


def test_written_patch_keeps_the_base_mapping_and_parses(ws):
    c = ctx(ws, "MistralOpenVINOConfig", "toy_mha", MHA)
    edit = combined_edit(c, ["normalized_args_remap"])
    spec = PatchSpec(model_type="toy_mha", base_class=c.base_class, min_transformers_version="5.0.0",
                     display_name="toy_mha", tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers)
    write_patch(ws, spec)
    text = (ws / CONFIGS).read_text()
    compile(text, CONFIGS, "exec")
    new_class = text[text.index("class ToyMha"):]
    assert 'NORMALIZED_CONFIG_CLASS = NormalizedTextConfig.with_args(num_key_value_heads="num_attention_heads", ' \
           'allow_new=True)' in new_class


def test_search_offers_the_mistral_base_with_the_remap(ws):
    found = search(ctx(ws, "MistralOpenVINOConfig", "toy_mha", MHA).analysis, ws, read_registry(ws), limit=10)
    mistral = [cand for cand in found if cand.base == "mistral"]
    assert mistral and mistral[0].patterns == ["normalized_args_remap"], [cand.id for cand in found]
