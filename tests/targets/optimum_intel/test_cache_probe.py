"""cache_probe: only a cache path that departs from the model's own uncached forward within every window
sends the repository's generation test to use_cache=False."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from sandboxes.targets.optimum_intel.cache_probe import causality, probe
from sandboxes.targets.optimum_intel.verify import _EagerReference

SMALL = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 2, "max_position_embeddings": 128}
CONFIGS = {
    # git's cached decode adds the cache length to the positions generate() already counted
    "git": dict(SMALL, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "image_size": 32, "patch_size": 16}),
    "llama": dict(SMALL, num_key_value_heads=2),
    # the cache evicts beyond the window, the sdpa mask does not: only beyond the window
    "moshi": dict(SMALL, num_key_value_heads=2, sliding_window=16, audio_vocab_size=16, num_codebooks=1,
                  depth_hidden_size=16, depth_num_hidden_layers=1, depth_num_attention_heads=2,
                  depth_ffn_dim=32),
    # sdpa drops the causal mask doge folds into its dynamic mask: uncached sdpa is not the model
    "doge": dict(SMALL, num_key_value_heads=2),
}


def _run(model_type: str, tmp_path):
    cfg = AutoConfig.for_model(model_type, **CONFIGS[model_type])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = torch.randint(3, 90, (1, 6), generator=torch.Generator().manual_seed(0))
    text = model.config.get_text_config()
    return probe(model, _EagerReference(str(tmp_path)), ids, getattr(text, "sliding_window", None), 0)


@pytest.mark.parametrize("model_type, expected", [("git", True), ("llama", False), ("moshi", False),
                                                  ("doge", False)])
def test_uncached_comparison_only_where_the_cache_path_departs(model_type, expected, tmp_path):
    result = _run(model_type, tmp_path)
    assert result["compare_uncached"] is expected, result
    if model_type == "git":
        assert not result["cached_equals_uncached"] and result["uncached_equals_eager"]
    if model_type == "moshi":
        assert result["length"] <= 16 and result["cached_equals_uncached"]


def test_a_model_that_cannot_generate_is_not_registered():
    class Broken:
        def generate(self, **kw):
            raise RuntimeError("no generate here")

    result = probe(Broken(), None, torch.ones((1, 6), dtype=torch.long), None, 0)
    assert result["compare_uncached"] is False and "no generate here" in result["error"]


# -- causality: is transformers' default attention causal where the model's eager path is? ------------

@pytest.mark.parametrize("model_type, expected", [("doge", True), ("llama", False)])
def test_default_attention_declared_broken_only_when_measured_non_causal(model_type, expected, tmp_path):
    """doge always passes its own dynamic mask, so sdpa drops is_causal on an unpadded prompt: the earlier
    positions see the last token under sdpa, not under eager. llama stays causal under both."""
    cfg = AutoConfig.for_model(model_type, **CONFIGS[model_type])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(5, 90, (1, 6), generator=torch.Generator().manual_seed(0))
    result = causality(model, _EagerReference(str(tmp_path)), ids, 1e-4)
    assert result["default_noncausal"] is expected, result
    assert result["eager_shift"] <= 1e-4
    assert (result["default_shift"] > 1e-4) is expected


class _Mixing:
    """Logits of every position = the mean embedding of the whole prompt: sees later tokens."""

    def __init__(self, causal: bool):
        self.causal = causal

    def __call__(self, input_ids, attention_mask=None, use_cache=None):
        x = torch.nn.functional.one_hot(input_ids, 16).float()
        n = torch.arange(1, x.shape[1] + 1).view(1, -1, 1)
        mixed = x.cumsum(1) / n if self.causal else x.mean(1, keepdim=True).expand_as(x)
        return type("Out", (), {"logits": mixed})()

    def logits(self, feeds):
        return self(**feeds).logits


@pytest.mark.parametrize("default_causal, eager_causal, expected", [
    (False, True, True), (True, True, False),
    (False, False, False),  # not causal as written either: a property of the model, not a broken default path
])
def test_causality_needs_the_eager_path_causal(default_causal, eager_causal, expected):
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    result = causality(_Mixing(default_causal), _Mixing(eager_causal), ids, 1e-5)
    assert result["default_noncausal"] is expected, result


def test_unmeasured_causality_declares_nothing():
    class Broken:
        def __call__(self, **kw):
            raise RuntimeError("no forward here")

    result = causality(Broken(), _Mixing(True), torch.tensor([[5, 6, 7]]), 1e-5)
    assert result["default_noncausal"] is False and "no forward here" in result["error"]
