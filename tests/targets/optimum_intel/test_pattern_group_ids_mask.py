"""Token-type group masks in the uncached OpenVINO export (patterns/group_ids_mask.py): the precondition, the
patcher it writes, and that the patcher makes git's "text-generation" export convert and match PyTorch."""

from __future__ import annotations

import ast
import inspect
import shutil
from pathlib import Path

import pytest

from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.group_ids_mask import (GROUP_IDS_MASK, SAVED, group_ids_mask_functions,
                                                                 patcher_source)
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "optimum_intel"
PATCHER = "optimum/exporters/openvino/model_patcher.py"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
FUNCTION = "token_type_ids_mask_function"


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def _ctx(ws: Path, model_type: str) -> PatternContext:
    return PatternContext({"model_type": model_type, "raw_text_config": {}}, ws, "LlamaOpenVINOConfig")


@pytest.mark.parametrize("model_type,applies", [("git", True), ("paligemma", True), ("llama", False),
                                                ("qwen2", False)])
def test_applies_to_models_whose_module_fills_group_ids_with_a_constant(ws, model_type, applies):
    names = [n for n, _ in applicable(_ctx(ws, model_type))]
    assert (GROUP_IDS_MASK.name in names) is applies
    assert (group_ids_mask_functions(model_type) == (FUNCTION,)) is applies


def test_writes_a_patcher_on_the_bases_and_registers_it(ws):
    ctx = _ctx(ws, "git")
    edit = combined_edit(ctx, [GROUP_IDS_MASK.name])
    name = edit.class_attrs["_MODEL_PATCHER"]
    spec = PatchSpec(model_type="git", base_class=ctx.base_class, min_transformers_version="4.26.0",
                     display_name="git", tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers)
    write_patch(ws, spec)
    tree = ast.parse((ws / PATCHER).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    assert [ast.unparse(b) for b in cls.bases] == ["OVDecoderModelPatcher"]  # the fixture's Llama patcher
    assert FUNCTION in ast.unparse(cls)
    assert f"_MODEL_PATCHER = {name}" in (ws / CONFIGS).read_text()


class _DecoderPatcher:
    """What OVDecoderModelPatcher does to masks while exporting: the vmap-free eager mask for eager and sdpa."""

    def __init__(self, model):
        self._model = model

    def __enter__(self):
        from optimum.exporters.openvino.model_patcher import eager_mask_without_vmap
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask

        self._restore = {"eager": eager_mask, "sdpa": sdpa_mask}
        for kind in self._restore:
            ALL_MASK_ATTENTION_FUNCTIONS.register(kind, eager_mask_without_vmap)
        return self

    def __exit__(self, *exc):
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

        for kind, fn in self._restore.items():
            ALL_MASK_ATTENTION_FUNCTIONS.register(kind, fn)


def test_uncached_git_export_converts_and_matches_pytorch_only_with_the_patcher():
    torch = pytest.importorskip("torch")
    ov = pytest.importorskip("openvino")
    pytest.importorskip("optimum.exporters.openvino.model_patcher")
    from transformers import GitConfig, GitForCausalLM

    cfg = GitConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    max_position_embeddings=64, vision_config=dict(hidden_size=16, intermediate_size=37,
                                                                   num_hidden_layers=1, num_attention_heads=2,
                                                                   image_size=8, patch_size=4))
    torch.manual_seed(0)
    model = GitForCausalLM(cfg).eval()

    class Uncached(torch.nn.Module):  # the "text-generation" export: no past_key_values in or out
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    example = {"input_ids": torch.randint(1, 99, (2, 7)), "attention_mask": torch.ones(2, 7, dtype=torch.int64)}
    module = inspect.getmodule(type(model))
    original = getattr(module, FUNCTION)

    with _DecoderPatcher(model), pytest.raises(Exception, match="element types must match"):
        ov.convert_model(Uncached(), example_input=example)

    space = {"_Base": _DecoderPatcher, "torch": torch, "inspect": inspect}
    exec(patcher_source("P", "_Base", (FUNCTION,)), space)
    with space["P"](model):
        assert getattr(module, FUNCTION) is not original
        ov_model = ov.convert_model(Uncached(), example_input=example)
    assert getattr(module, FUNCTION) is original  # put back on exit

    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    gen = torch.Generator().manual_seed(1)
    for batch, length in ((1, 5), (2, 11)):
        ids = torch.randint(1, 99, (batch, length), generator=gen)
        mask = torch.ones_like(ids)
        mask[-1, :2] = 0  # a left-padded row
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.numpy()
        got = compiled({"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        keep = mask.numpy().astype(bool)
        assert abs(got - want)[keep].max() < 1e-4
    assert not hasattr(space["P"], SAVED)
