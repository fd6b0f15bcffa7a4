"""Families whose causal-LM class runs on a sub-config (emu3, mllama, musicgen) save a config AutoConfig reads.

The export (optimum's main_export) and the parity check load the tiny directory with AutoConfig and
AutoModelForCausalLM and key on the top-level model_type, so the directory must round-trip through them.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tools.hf.config import load_config
from tools.tiny.model import TinyModelError, build_tiny, saved_config, validate_tiny


@pytest.fixture(scope="module")
def emu3_tiny(tmp_path_factory):
    return build_tiny(load_config("emu3").raw, tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("model_type,cls_name,text_cls", [
    ("emu3", "Emu3ForCausalLM", "Emu3TextConfig"),
    ("mllama", "MllamaForCausalLM", "MllamaTextConfig"),
])
def test_composite_config_round_trips_through_auto_classes(model_type, cls_name, text_cls, tmp_path, emu3_tiny):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    tiny = emu3_tiny if model_type == "emu3" else build_tiny(load_config(model_type).raw, tmp_path)
    assert tiny.validation["ok"], tiny.validation["problems"]
    saved = json.loads((tiny.path / "config.json").read_text())
    assert saved["model_type"] == model_type and saved["architectures"] == [cls_name]
    assert saved["text_config"]["hidden_size"] == 64  # shrunk consistently, not a default-sized text part
    assert type(AutoConfig.from_pretrained(tiny.path)).__name__ == f"{text_cls.replace('Text', '')}"
    model, info = AutoModelForCausalLM.from_pretrained(tiny.path, dtype=torch.float32, output_loading_info=True)
    assert type(model).__name__ == cls_name and type(model.config).__name__ == text_cls
    assert not info["missing_keys"] and not info["unexpected_keys"]
    weights = load_file(tiny.path / "model.safetensors")
    state = model.state_dict()
    assert set(weights) <= set(state)
    assert all(torch.equal(weights[k], state[k]) for k in weights)
    assert tiny.validation["loaded_as"] == {"model_type": model_type, "class": cls_name, "config_class": text_cls}


def test_validation_rejects_a_sub_config_only_directory(emu3_tiny, tmp_path):
    # the layout that broke the nightly: the text sub-config saved alone, under a model_type AutoConfig lacks
    broken = tmp_path / "broken"
    shutil.copytree(emu3_tiny.path, broken)
    cfg = json.loads((broken / "config.json").read_text())
    sub = {**cfg["text_config"], "model_type": "emu3_text_model", "architectures": ["Emu3ForCausalLM"]}
    (broken / "config.json").write_text(json.dumps(sub))
    report = validate_tiny(broken)
    assert not report["ok"]
    assert "AutoConfig cannot read config.json (model_type 'emu3_text_model')" in report["problems"][0]


def test_validation_rejects_a_class_the_auto_class_would_not_build(emu3_tiny, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(emu3_tiny.path, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "architectures": ["Emu3ForConditionalGeneration"]}))
    report = validate_tiny(other)
    assert not report["ok"] and "not the Emu3ForConditionalGeneration that was built" in report["problems"][0]


@pytest.mark.parametrize("model_type,top", [("musicgen", "MusicgenConfig"),
                                            ("musicgen_melody", "MusicgenMelodyConfig")])
def test_bare_decoder_is_wrapped_in_its_top_level_config(model_type, top, tmp_path):
    import transformers
    from transformers import AutoConfig

    from tools.tiny.model import _make_config, config_class_for, model_class
    from tools.tiny.shrink import shrink_config

    raw = load_config(model_type).raw
    assert raw["model_type"] == f"{model_type}_decoder"  # what the default config of the causal-LM class says
    decoder = _make_config(config_class_for(raw), shrink_config(raw))
    cls = model_class(decoder)
    wrapped = saved_config(cls, decoder, decoder)
    assert type(wrapped).__name__ == top and wrapped.model_type == model_type
    assert wrapped.architectures == [cls.__name__]
    wrapped.save_pretrained(tmp_path)
    back = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(back, getattr(transformers, top))
    assert back.decoder.to_dict() == decoder.to_dict() | {"architectures": back.decoder.architectures}
    assert back.audio_encoder.codebook_size == decoder.vocab_size
    assert back.text_encoder.d_model == 64


def test_decoder_the_auto_class_cannot_unwrap_fails_the_build_with_the_reason(tmp_path):
    # transformers 5.5 maps musicgen to MusicgenForCausalLM but unwraps only `text_config` slots, so no
    # musicgen directory (tiny or published) loads through AutoModelForCausalLM; the build says why
    with pytest.raises(TinyModelError, match=r"'decoder' slot.*unwraps only a 'text_config' slot"):
        build_tiny(load_config("musicgen").raw, tmp_path)


def test_validation_rejects_weights_the_auto_class_does_not_use(emu3_tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    renamed = tmp_path / "renamed"
    shutil.copytree(emu3_tiny.path, renamed)
    weights = load_file(renamed / "model.safetensors")
    name = next(k for k in weights if k.startswith("model.layers.0."))
    weights["text_model." + name] = weights.pop(name)  # a prefix the causal-LM class does not expect
    save_file(weights, renamed / "model.safetensors", metadata={"format": "pt"})
    report = validate_tiny(renamed)
    assert not report["ok"] and "saved weights do not match" in report["problems"][0]
    assert name in report["problems"][0]
