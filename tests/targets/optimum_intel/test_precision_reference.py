"""The precision matrix's greedy reference is the one the gate matched (precision.Reference): transformers'
cached generate() by default, the model's uncached one when the cache probe found the cached path departing
from the model (git), so a faithful export is not measured against transformers' cache bug."""

from __future__ import annotations

import pytest

from sandboxes.targets.optimum_intel import precision

torch = pytest.importorskip("torch")


class _Model:
    """Cached generate() continues with 1s, uncached with 2s, as git's two paths differ."""

    def __call__(self, **feeds):
        return type("Out", (), {"logits": torch.zeros(1, 3, 5)})()

    def generate(self, input_ids, use_cache=True, max_new_tokens=2, **_):
        new = torch.full((1, max_new_tokens), 1 if use_cache else 2)
        return torch.cat([input_ids, new], dim=1)


def _tok(prompt, return_tensors="pt"):
    return {"input_ids": torch.tensor([[7, 8, 9]])}


@pytest.mark.parametrize("uncached,want", [(False, [1, 1]), (True, [2, 2])])
def test_greedy_reference_follows_the_cache_probe(uncached, want):
    ref = precision.Reference(_Model(), _tok, ["p"], [{"input_ids": torch.tensor([[1]])}],
                              {"max_new_tokens": 2}, uncached=uncached)
    assert ref.greedy == [want]
    assert "use_cache" not in ref.gen  # the OpenVINO model generates as deployed, with its own cache setting


@pytest.mark.parametrize("attention, eager_used", [({"default_noncausal": True}, True),
                                                   ({"default_noncausal": False}, False), (None, False)])
def test_precision_reference_is_the_eager_model_when_the_default_attention_is_not_causal(attention, eager_used):
    from sandboxes.targets.optimum_intel.verify import _reference_model

    default, eager_model = _Model(), _Model()

    class Eager:
        def get(self):
            return eager_model

    assert (_reference_model(default, Eager(), attention) is eager_model) is eager_used
