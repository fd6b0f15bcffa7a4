"""The parity reference gets the positions generate() would give it (sandboxes/jobs/ov_verify.py)."""

from __future__ import annotations

import torch
from transformers import XLMRobertaXLConfig, XLMRobertaXLForCausalLM

from sandboxes.targets.optimum_intel.verify import _as_generate_feeds


def _tiny_roberta():
    # absolute, padding-offset position embeddings: the case a bare forward gets wrong on padded rows
    cfg = XLMRobertaXLConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=40, is_decoder=True, pad_token_id=1)
    torch.manual_seed(0)
    return XLMRobertaXLForCausalLM(cfg).eval()


def test_positions_follow_the_mask_like_generate():
    model = _tiny_roberta()
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    feeds = _as_generate_feeds(model, {"input_ids": torch.full((2, 4), 5), "attention_mask": mask})
    assert feeds["position_ids"].tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_left_padded_row_matches_the_same_prompt_unpadded():
    model = _tiny_roberta()
    prompt = torch.tensor([[7, 8, 9]])
    padded = {"input_ids": torch.tensor([[1, 1, 7, 8, 9]]), "attention_mask": torch.tensor([[0, 0, 1, 1, 1]])}
    alone = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    with torch.no_grad():
        want = model(**_as_generate_feeds(model, alone)).logits[0]
        got = model(**_as_generate_feeds(model, padded)).logits[0, 2:]
        bare = model(**padded).logits[0, 2:]
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(bare, want, atol=1e-3)  # why the feeds exist: a bare forward shifts positions


def test_inputs_left_alone_when_the_model_takes_no_positions():
    class NoPositions(torch.nn.Module):
        config = type("C", (), {"is_encoder_decoder": False})()

        def forward(self, input_ids, attention_mask=None):
            return input_ids

    inputs = {"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3)}
    assert _as_generate_feeds(NoPositions(), inputs) is inputs


def test_given_positions_are_kept():
    model = _tiny_roberta()
    given = torch.tensor([[3, 4]])
    inputs = {"input_ids": torch.tensor([[5, 6]]), "attention_mask": torch.ones(1, 2), "position_ids": given}
    assert _as_generate_feeds(model, inputs)["position_ids"] is given
