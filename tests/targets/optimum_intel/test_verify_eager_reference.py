"""The fallback reference of sandboxes/jobs/ov_verify.py is the model as written (eager, uncached)."""

from __future__ import annotations

import torch
from transformers import DogeConfig, DogeForCausalLM

from sandboxes.targets.optimum_intel.verify import _EagerReference


def test_eager_reference_stays_causal_where_sdpa_does_not(tmp_path):
    # doge folds the causal mask into its dynamic mask; sdpa hands it None on unpadded input
    cfg = DogeConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    DogeForCausalLM(cfg).save_pretrained(tmp_path)
    ids = torch.randint(3, 60, (1, 12), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, -1] = 61
    ref = _EagerReference(str(tmp_path))
    feeds = [{"input_ids": x, "attention_mask": torch.ones_like(x)} for x in (ids, changed)]
    earlier = [ref.logits(f)[0, :-1] for f in feeds]
    assert torch.equal(earlier[0], earlier[1])
