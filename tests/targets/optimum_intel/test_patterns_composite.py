"""Composite families: the text sub-model's registration (emu3, mllama), the nested text config's normalized
config (fuyu), the function-body insertion they rely on, and the bases the search offers for them."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from transformers import AutoConfig

from tools.hf.config import analyze
from tools.source.python_edit import EditError
from tools.targets.optimum_intel.patch import PatchSpec, _registrations, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable, combined_edit
from tools.targets.optimum_intel.patterns.edit import insert_in_function
from tools.targets.optimum_intel.patterns.nested_text import NESTED_TEXT_CONFIG
from tools.targets.optimum_intel.patterns.text_submodel import HELPER, MARKER, MODELING_BASE, TEXT_SUBMODEL
from tools.targets.optimum_intel.search import bases
from tools.targets.optimum_intel.target import read_registry
from tests import TESTS
from tests.targets.optimum_intel.test_patch import run_helper

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
# the shape of optimum-intel's modeling_base.py around what the IR-config fix follows
MODELING_SOURCE = '''\
from transformers import PretrainedConfig


def _maybe_register_remote_code_model(model_id, revision=None, token=None, cache_dir=None):
    return None


class OVBaseModel:
    @classmethod
    def from_pretrained(cls, model_id, export=False, token=None, cache_dir=None, subfolder="", config=None,
                        local_files_only=False, trust_remote_code=False, revision=None, **kwargs):
        if trust_remote_code:
            _maybe_register_remote_code_model(model_id, revision=revision, token=token, cache_dir=cache_dir)

        _export = export
        return cls._from_pretrained(model_id, config=config)
'''


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    (tmp_path / "ws" / MODELING_BASE).parent.mkdir(parents=True)
    (tmp_path / "ws" / MODELING_BASE).write_text(MODELING_SOURCE)
    return tmp_path / "ws"


def analysis(model_type: str, **text) -> dict:
    """The analysis the agent makes of a default config, with the nested text config shrunk by `text`."""
    raw = AutoConfig.for_model(model_type).to_dict()
    raw.pop("id2label", None), raw.pop("label2id", None)
    out = analyze(raw).model_dump(mode="json")
    key = out["text_config_key"]
    out["raw_text_config"] = {**raw[key], **text} if key else raw
    return out


def ctx(ws: Path, model_type: str, base: str = "LlamaOpenVINOConfig") -> PatternContext:
    return PatternContext(analysis(model_type), ws, base)


def write(ws: Path, c: PatternContext, names: list[str]):
    edit = combined_edit(c, names)
    spec = PatchSpec(model_type=c.model_type, base_class=c.base_class, min_transformers_version="5.0.0",
                     display_name=c.model_type, tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers, also_registers=edit.also_registers,
                     tasks=edit.tasks, module_blocks=edit.module_blocks, code_blocks=edit.code_blocks)
    return edit, write_patch(ws, spec)


# -- inserting into a function ------------------------------------------------------------------------

def test_insert_in_function_follows_the_statement_holding_the_call():
    method = "OVBaseModel.from_pretrained"
    edit = insert_in_function(MODELING_SOURCE, method, "_maybe_register_remote_code_model", "y = 1  # mark\n",
                              "# mark")
    lines = edit.text.splitlines()
    at = lines.index("            _maybe_register_remote_code_model(model_id, revision=revision, token=token, "
                     "cache_dir=cache_dir)")
    # after the whole `if` that holds the call, at the method body's indentation
    assert lines[at + 1] == "        y = 1  # mark" and lines[at + 3] == "        _export = export"
    again = insert_in_function(edit.text, method, "_maybe_register_remote_code_model", "y = 1  # mark\n", "# mark")
    assert not again.changed and again.text == edit.text


def test_insert_in_function_refuses_what_it_cannot_place():
    with pytest.raises(EditError, match="no function"):
        insert_in_function(MODELING_SOURCE, "OVBaseModel.other", "_export", "y = 1\n", "y = 1")
    with pytest.raises(EditError, match="no statement calling"):
        insert_in_function(MODELING_SOURCE, "OVBaseModel.from_pretrained", "not_called", "y = 1\n", "y = 1")


# -- the text sub-model ------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type, sub", [("emu3", "emu3_text_model"), ("mllama", "mllama_text_model")])
def test_text_submodel_applies_where_the_causal_lm_takes_the_nested_config(ws, model_type, sub):
    c = ctx(ws, model_type)
    found = dict(applicable(c))
    assert TEXT_SUBMODEL.name in found and sub in found[TEXT_SUBMODEL.name]
    assert NESTED_TEXT_CONFIG.name not in found  # the model's config is the sub-config itself
    edit = combined_edit(c, [TEXT_SUBMODEL.name])
    assert edit.also_registers == [sub] and edit.tasks == ["text-generation", "text-generation-with-past"]
    # AutoConfig does not know `sub`: the loader reads it with the model class's config class
    assert [b.file for b in edit.module_blocks + edit.code_blocks] == [MODELING_BASE, MODELING_BASE]


def test_text_submodel_does_not_apply_to_plain_or_self_contained_configs(ws):
    assert TEXT_SUBMODEL.precondition(ctx(ws, "llama")) is None
    assert TEXT_SUBMODEL.precondition(ctx(ws, "fuyu")) is None  # FuyuForCausalLM takes the composite config


def test_text_submodel_leaves_a_sub_type_another_class_registers(ws):
    text = (ws / CONFIGS).read_text()
    (ws / CONFIGS).write_text(text.replace('"exaone",', '"emu3_text_model",', 1))
    assert TEXT_SUBMODEL.precondition(ctx(ws, "emu3")) is None


def test_text_submodel_writes_both_registrations_and_the_ir_config_fix(ws):
    _, result = write(ws, ctx(ws, "emu3"), [TEXT_SUBMODEL.name])
    regs = _registrations(ast.parse((ws / CONFIGS).read_text()))
    assert regs["Emu3OpenVINOConfig"] == [("emu3", ["text-generation", "text-generation-with-past"]),
                                          ("emu3_text_model", ["text-generation", "text-generation-with-past"])]
    modeling = (ws / MODELING_BASE).read_text()
    tree = ast.parse(modeling)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == [
        "_maybe_register_remote_code_model", HELPER]
    assert modeling.index(MARKER) > modeling.index("            _maybe_register_remote_code_model(")
    assert modeling.index(MARKER) < modeling.index("_export = export") and MODELING_BASE in result.changed
    # the rewrite after verification (same class owns the sub type) changes nothing
    _, again = write(ws, ctx(ws, "emu3"), [TEXT_SUBMODEL.name])
    assert again.changed == [] and (ws / MODELING_BASE).read_text() == modeling


def test_the_ir_config_helper_reads_a_sub_config_autoconfig_does_not_know(ws, tmp_path):
    """The helper the pattern writes, run: the text sub-config of emu3 is read by Emu3TextConfig; a config
    AutoConfig knows (llama) is left to AutoConfig."""
    write(ws, ctx(ws, "emu3"), [TEXT_SUBMODEL.name])
    space: dict = {}
    exec(compile((ws / MODELING_BASE).read_text(), "modeling_base", "exec"), space)
    from transformers import AutoConfig as Auto
    from transformers.models.emu3.configuration_emu3 import Emu3TextConfig

    Emu3TextConfig(hidden_size=32, architectures=["Emu3ForCausalLM"]).save_pretrained(tmp_path / "emu3")
    Auto.for_model("llama", architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path / "llama")
    found = space[HELPER](str(tmp_path / "emu3"))
    assert isinstance(found, Emu3TextConfig) and found.hidden_size == 32
    assert space[HELPER](str(tmp_path / "llama")) is None
    assert space[HELPER](str(tmp_path / "missing")) is None


def test_the_tiny_model_builder_builds_a_composite_family_from_its_text_config(ws, tmp_path):
    """emu3's causal LM is built from its text sub-config, as from_pretrained builds it; the directory keeps
    the composite config so AutoConfig and AutoModelForCausalLM read it back."""
    text = {"vocab_size": 512, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0}
    write_patch(ws, PatchSpec(model_type="emu3", base_class="LlamaOpenVINOConfig", min_transformers_version="5.0.0",
                              display_name="Emu3", tiny_config={"model_type": "emu3", "text_config": text},
                              expected_sdpa=None))
    facts = run_helper(ws, tmp_path, f"""
        path = h.build("emu3", {str(tmp_path / "emu3")!r})
        from transformers import AutoConfig, AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(path)
        print(json.dumps({{"config": AutoConfig.from_pretrained(path).model_type, "model": type(model).__name__,
                          "vocab": model.config.vocab_size}}))
    """)
    assert facts == {"config": "emu3", "model": "Emu3ForCausalLM", "vocab": 512}


# -- the nested text config --------------------------------------------------------------------------

def test_nested_text_config_maps_the_normalized_names_into_the_sub_config(ws):
    c = ctx(ws, "fuyu", "MixtralOpenVINOConfig")
    found = dict(applicable(c))
    assert NESTED_TEXT_CONFIG.name in found and TEXT_SUBMODEL.name not in found
    edit = combined_edit(c, [NESTED_TEXT_CONFIG.name])
    source = edit.class_attrs["NORMALIZED_CONFIG_CLASS"]
    for name, key in (("num_layers", "num_hidden_layers"), ("num_attention_heads", "num_attention_heads"),
                      ("hidden_size", "hidden_size"), ("vocab_size", "vocab_size")):
        assert f'{name}="text_config.{key}"' in source
    # the base's generator reads num_key_value_heads (Mistral's): persimmon has none, so its heads stand in
    assert 'num_key_value_heads="text_config.num_attention_heads", allow_new=True' in source


def test_nested_text_config_leaves_flat_configs_alone(ws):
    assert NESTED_TEXT_CONFIG.precondition(ctx(ws, "llama")) is None
    assert NESTED_TEXT_CONFIG.precondition(ctx(ws, "emu3")) is None


# -- bases offered by the search -------------------------------------------------------------------------

def test_search_offers_the_nested_language_model_and_a_closely_copied_family():
    registry = {"llama": "LlamaOpenVINOConfig", "persimmon": "PersimmonOpenVINOConfig",
                "bart": "BartOpenVINOConfig", "qwen2": "Qwen2OpenVINOConfig"}
    fuyu = [b for b, _, _ in bases(analysis("fuyu"), FIXTURES, registry)]
    assert fuyu[0] == "persimmon"
    mvp = [b for b, _, _ in bases(analysis("mvp"), FIXTURES, registry)]
    assert mvp[0] == "bart"
    # a config like the generic decoders' is not searched against every registered type
    assert [b for b, _, _ in bases(analysis("qwen3"), FIXTURES, registry)][0] != "bart"


def test_read_registry_of_the_fixture_knows_no_composite_types():
    assert not {"emu3", "emu3_text_model", "fuyu"} & set(read_registry(FIXTURES))
