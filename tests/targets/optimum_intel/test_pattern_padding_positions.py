"""RoBERTa-style causal LMs (xmod, xlm-roberta-xl, roberta-prelayernorm): OVModelForCausalLM counts positions the
model's way when it is called without position ids (patterns/padding_positions.py)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig

from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.padding_positions import (HELPER, MARKER, MODELING_DECODER, MODELS,
                                                                    PADDING_IDX_POSITIONS, counts_from_padding_idx)
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
TYPES = ("xmod", "xlm-roberta-xl", "roberta-prelayernorm")
WITH_POSITIONS, WITHOUT_POSITIONS = "Qwen3OpenVINOConfig", "LlamaOpenVINOConfig"  # the fixture's bases
# the shape of optimum-intel's modeling_decoder.py around the position ids prepare_inputs builds
MODELING_SOURCE = '''\
import numpy as np
import torch


class OVBaseDecoderModel:
    pass


class OVModelForCausalLM(OVBaseDecoderModel):
    def prepare_inputs(self, input_ids, attention_mask=None, past_key_values=None, position_ids=None, **kwargs):
        inputs = {"input_ids": input_ids.cpu().numpy()}
        past_len = self._get_past_length(past_key_values)
        if attention_mask is not None:
            attention_mask = attention_mask.cpu().numpy()
        else:
            attention_mask = np.ones((input_ids.shape[0], input_ids.shape[1] + past_len), dtype=np.int64)

        if "position_ids" in self.input_names:
            if position_ids is not None:
                position_ids = position_ids.cpu().numpy()
            else:
                position_ids = np.cumsum(attention_mask, axis=1) - 1
                position_ids[attention_mask == 0] = 1
            if past_key_values:
                position_ids = position_ids[:, -input_ids.shape[1] :]

            inputs["position_ids"] = position_ids
        return inputs

    def _get_past_length(self, past_key_values=None):
        return 0 if past_key_values is None else self._past_length
'''


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    (tmp_path / "ws" / MODELING_DECODER).parent.mkdir(parents=True)
    (tmp_path / "ws" / MODELING_DECODER).write_text(MODELING_SOURCE)
    return tmp_path / "ws"


def ctx(ws: Path, model_type: str, base: str = WITH_POSITIONS) -> PatternContext:
    return PatternContext({"model_type": model_type, "raw_text_config": {}}, ws, base)


def write(ws: Path, c: PatternContext):
    edit = combined_edit(c, [PADDING_IDX_POSITIONS.name])
    spec = PatchSpec(model_type=c.model_type, base_class=c.base_class, min_transformers_version="5.0.0",
                     display_name=c.model_type, tiny_config={}, expected_sdpa=None, joins=edit.joins,
                     module_blocks=edit.module_blocks, code_blocks=edit.code_blocks)
    return edit, write_patch(ws, spec)


def _runtime(ws: Path, model_type: str, past_length: int = 0):
    """An OVModelForCausalLM of the edited module, stubbed around prepare_inputs."""
    space: dict = {}
    exec(compile((ws / MODELING_DECODER).read_text(), "modeling_decoder", "exec"), space)
    model = space["OVModelForCausalLM"]()
    model.config = AutoConfig.for_model(model_type, pad_token_id=1)
    model.input_names, model._past_length = {"input_ids": 0, "attention_mask": 1, "position_ids": 2}, past_length
    return model


def _own_count(model_type: str, input_ids: torch.Tensor, past_length: int) -> list:
    """What the model's transformers embeddings compute when they are given no position ids."""
    import importlib

    from transformers.models.auto.configuration_auto import model_type_to_module_name

    module = model_type_to_module_name(model_type)
    modeling = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
    embeddings = getattr(modeling, counts_from_padding_idx(model_type))
    return embeddings.create_position_ids_from_input_ids(input_ids, 1, past_length).tolist()


# -- where it applies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", TYPES)
def test_applies_to_embeddings_counting_from_padding_idx_with_a_base_that_exports_positions(ws, model_type):
    found = dict(applicable(ctx(ws, model_type)))
    assert "padding_idx + 1" in found[PADDING_IDX_POSITIONS.name]


@pytest.mark.parametrize("model_type", ["llama", "bert-generation", "gpt2", "prophetnet"])
def test_leaves_models_that_count_positions_otherwise(ws, model_type):
    # bert-generation and gpt2 count from 0 like the runtime; prophetnet counts in its own learned embedding
    assert PADDING_IDX_POSITIONS.precondition(ctx(ws, model_type)) is None


def test_leaves_bases_without_position_ids_and_workspaces_without_the_runtime(ws):
    assert PADDING_IDX_POSITIONS.precondition(ctx(ws, "xmod", WITHOUT_POSITIONS)) is None
    (ws / MODELING_DECODER).write_text(MODELING_SOURCE.replace("self._get_past_length(past_key_values)", "0"))
    assert PADDING_IDX_POSITIONS.precondition(ctx(ws, "xmod")) is None


# -- the edit ---------------------------------------------------------------------------------------------

def test_writes_the_count_before_the_runtime_builds_position_ids(ws):
    _, result = write(ws, ctx(ws, "xmod"))
    text = (ws / MODELING_DECODER).read_text()
    tree = ast.parse(text)
    names = [getattr(n, "name", None) or n.targets[0].id for n in tree.body if not isinstance(n, ast.Import)]
    assert names == ["OVBaseDecoderModel", MODELS, HELPER, "OVModelForCausalLM"]
    assert text.index("past_len = self._get_past_length") < text.index(MARKER) < text.index('if "position_ids" in')
    assert f'{MODELS} = ["xmod"]' in text and MODELING_DECODER in result.changed
    _, again = write(ws, ctx(ws, "xmod"))  # the rewrite after verification changes nothing
    assert again.changed == [] and (ws / MODELING_DECODER).read_text() == text


def test_a_second_type_joins_the_list_the_first_wrote(ws):
    write(ws, ctx(ws, "xmod"))
    edit, _ = write(ws, ctx(ws, "xlm-roberta-xl"))
    assert edit.joins == ["xmod"] and not edit.module_blocks and not edit.code_blocks
    text = (ws / MODELING_DECODER).read_text()
    assert f'{MODELS} = ["xmod", "xlm-roberta-xl"]' in text and text.count(MARKER) == 1


# -- the edited runtime, run ------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", TYPES)
def test_a_call_without_positions_counts_them_as_the_model_does(ws, model_type):
    write(ws, ctx(ws, model_type))
    ids = torch.tensor([[1, 1, 7, 8, 9], [5, 6, 7, 8, 9]])  # left padded with pad_token_id 1
    mask = (ids != 1).long()
    got = _runtime(ws, model_type).prepare_inputs(ids, attention_mask=mask)["position_ids"]
    assert got.tolist() == _own_count(model_type, ids, 0) == [[1, 1, 2, 3, 4], [2, 3, 4, 5, 6]]
    # a cached call: the model adds the cache length, as its embeddings do (past_key_values_length)
    step = torch.tensor([[10], [11]])
    cached = _runtime(ws, model_type, past_length=5).prepare_inputs(
        step, attention_mask=torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1), past_key_values=((),))
    assert cached["position_ids"].tolist() == _own_count(model_type, step, 5)


def test_given_positions_and_other_models_are_left_as_they_were(ws):
    write(ws, ctx(ws, "xmod"))
    ids, mask = torch.tensor([[1, 7, 8]]), torch.tensor([[0, 1, 1]])
    given = torch.tensor([[0, 0, 1]])  # generate()'s, which the exported model must get unchanged
    assert _runtime(ws, "xmod").prepare_inputs(ids, mask, position_ids=given)["position_ids"].tolist() == [[0, 0, 1]]
    other = _runtime(ws, "llama").prepare_inputs(ids, mask)["position_ids"]
    assert np.array_equal(other, [[1, 0, 1]])  # the runtime's own count, untouched
