"""The precision matrix feeds an export what parity fed it: no position ids to one that computes its own."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sandboxes.targets.optimum_intel import precision


class MambaLikeModel:
    """optimum-intel's state-space decoder: no position_ids input, and it refuses one."""

    input_names = {"input_ids": 0, "attention_mask": 1}

    def __init__(self, logits):
        self._logits = logits

    def __call__(self, input_ids, attention_mask, **extra):
        if "position_ids" in extra:
            raise ValueError("`position_ids` input is not supported for `OVModelWithMambaForCausalLM`")
        return SimpleNamespace(logits=self._logits)

    def generate(self, input_ids, **kw):
        return torch.cat([input_ids, torch.tensor([[7, 7]])], dim=1)


def test_an_export_without_position_ids_is_measured_not_refused():
    logits = torch.randn(1, 4, 16)
    feeds = {"input_ids": torch.tensor([[1, 2, 3, 4]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "position_ids": torch.arange(4)[None]}  # what the reference forward was given
    ref = SimpleNamespace(feeds=[feeds], logits=[logits], prompts=["p"], greedy=[[7, 7]],
                          gen={"max_new_tokens": 2},
                          tok=lambda p, return_tensors: {"input_ids": torch.tensor([[1, 2]])})
    row = precision.measure(MambaLikeModel(logits.clone()), ref)
    assert row["top1"] == 1.0 and row["max_abs_diff"] == 0.0 and row["greedy"] == 1.0


def test_half_the_positions_agreeing_is_exactly_one_half():
    """39 of 78 positions over two feeds, summed from float32 means, came to 0.49999999: youtu was refused
    by a 0.5 bar it met."""
    feeds, ref_logits, ov_logits = [], [], []
    for n, agree in ((1, 1), (77, 38)):
        ref = torch.zeros(1, n, 4)
        ref[..., 0] = 1.0
        ov = ref.clone()
        ov[0, agree:, 1] = 2.0  # past `agree`, the export prefers another token
        feeds.append({"input_ids": torch.ones(1, n, dtype=torch.long),
                      "attention_mask": torch.ones(1, n, dtype=torch.long)})
        ref_logits.append(ref)
        ov_logits.append(ov)

    class TwoFeeds(MambaLikeModel):
        def __call__(self, input_ids, attention_mask, **extra):
            return SimpleNamespace(logits=ov_logits[0] if input_ids.shape[1] == 1 else ov_logits[1])

    ref = SimpleNamespace(feeds=feeds, logits=ref_logits, prompts=["p"], greedy=[[7, 7]], gen={},
                          tok=lambda p, return_tensors: {"input_ids": torch.tensor([[1, 2]])})
    row = precision.measure(TwoFeeds(None), ref)
    assert row["top1"] == 0.5 and row["positions"] == 78
