"""cache_probe: only a cache path that departs from the model's own uncached forward within every window
sends the repository's generation test to use_cache=False."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from sandboxes.targets.optimum_intel.cache_probe import probe
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
