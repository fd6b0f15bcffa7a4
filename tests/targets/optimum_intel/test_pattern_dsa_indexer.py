"""dsa_indexer_cache: a DSA indexer's keys exported as one more cache tensor per layer (GlmMoeDsa's shape),
on the miniature optimum-intel workspace."""

from __future__ import annotations

import ast
import types

import pytest
import torch
import torch.nn.functional as F

from tests.targets.optimum_intel.test_patterns_moe_shapes import (CONFIGS, PATCHER, assert_additive, class_source,
                                                                  ctx, snapshot, top_level, ws)  # noqa: F401
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import MLA_GENERATOR, registry
from tools.targets.optimum_intel.patterns.dsa_indexer import (AXES, DSA_INDEXER_CACHE, GENERATOR, dsa_indexer,
                                                              forward_source, indexer_in)
from tools.targets.optimum_intel.patterns.edit import INPUT_GENERATORS
from tools.targets.optimum_intel.patterns.moe import MOE_BATCHED_MM

INDEXER, ATTENTION = "GlmMoeDsaIndexer", "GlmMoeDsaAttention"
GENERATORS_STUB = f"class {MLA_GENERATOR}:\n    \"\"\"Upstream: MLA key/value caches.\"\"\"\n"


def _module(*classes: str) -> str:
    return "\n\n".join(class_source("glm_moe_dsa", c) for c in classes)


def with_generators(ws):
    (ws / INPUT_GENERATORS).write_text(GENERATORS_STUB)
    return ws


def test_indexer_is_recognised_by_structure_not_by_name():
    assert dsa_indexer("glm_moe_dsa") == (INDEXER, ATTENTION)
    for other in ("deepseek_v3", "glm4_moe_lite", "longcat_flash", "llama", "olmoe"):
        assert dsa_indexer(other) is None, other
    renamed = _module(INDEXER, ATTENTION).replace("GlmMoeDsa", "MySparse")
    assert indexer_in(ast.parse(renamed)) == ("MySparseIndexer", "MySparseAttention")


@pytest.mark.parametrize("old, new", [
    ("scores = F.relu(scores)", "scores = F.gelu(scores)"),  # another scoring
    ("topk = min(self.index_topk, total_len)", "topk = self.index_topk"),  # another top-k rule
    ("        if seq_len > 1:\n            self._cached_keys = None", "        pass"),  # another cache rule
    ("index_scores = index_scores + attention_mask", "index_scores = index_scores"),  # unmasked
    ("index_mask.scatter_(-1, topk_indices, 0.0)", "index_mask.scatter_(-1, topk_indices[..., :1], 0.0)"),
    ("self.indexer = GlmMoeDsaIndexer(config, layer_idx)", "self.indexer = None"),  # not built by the attention
])
def test_other_shapes_are_refused(old, new):
    src = _module(INDEXER, ATTENTION)
    changed = src.replace(old, new)
    assert changed != src, old
    assert indexer_in(ast.parse(changed)) is None


def test_precondition_needs_the_mla_generator_to_extend(ws):
    assert DSA_INDEXER_CACHE.name in registry()
    assert list(registry())[0] == DSA_INDEXER_CACHE.name  # its generator and patcher win over the MoE/MLA ones
    assert DSA_INDEXER_CACHE.precondition(ctx(ws, "LlamaOpenVINOConfig", "glm_moe_dsa")) is None
    with_generators(ws)
    reason = DSA_INDEXER_CACHE.precondition(ctx(ws, "LlamaOpenVINOConfig", "glm_moe_dsa"))
    assert reason and INDEXER in reason and "index_topk=2048" in reason
    for other in ("deepseek_v3", "llama"):
        assert DSA_INDEXER_CACHE.precondition(ctx(ws, "LlamaOpenVINOConfig", other)) is None, other


def _write(ws, c, names):
    from tools.targets.optimum_intel.patterns.base import combined_edit

    edit = combined_edit(c, names)
    spec = PatchSpec(model_type=c.model_type, base_class=c.base_class, min_transformers_version="5.2.0",
                     display_name=c.model_type, tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers, module_blocks=edit.module_blocks)
    return write_patch(ws, spec)


def test_edit_with_the_moe_pattern_builds_on_its_patcher(ws):
    with_generators(ws)
    before = snapshot(ws)
    c = ctx(ws, "LlamaOpenVINOConfig", "glm_moe_dsa")
    result = _write(ws, c, [DSA_INDEXER_CACHE.name, MOE_BATCHED_MM.name])
    after = snapshot(ws)
    assert_additive(before, after)
    assert set(result.changed) >= {CONFIGS, PATCHER, INPUT_GENERATORS}
    names = top_level(after[PATCHER])
    at = names.index("OVDecoderModelPatcher")
    assert names[at + 1:at + 4] == ["GlmMoeDsaModelPatcher", "_glm_moe_dsa_indexer_forward",
                                    "GlmMoeDsaIndexerCachePatcher"]
    assert "class GlmMoeDsaIndexerCachePatcher(GlmMoeDsaModelPatcher):" in after[PATCHER]
    assert f'type(m).__name__ == "{INDEXER}"' in after[PATCHER]
    assert top_level(after[INPUT_GENERATORS]) == [MLA_GENERATOR, GENERATOR, AXES]
    for line in ("    _MODEL_PATCHER = GlmMoeDsaIndexerCachePatcher", f"    DUMMY_PKV_GENERATOR_CLASS = {GENERATOR}",
                 f"    add_past_key_values = {AXES}"):
        assert line in after[CONFIGS].splitlines()
    again = snapshot(ws)
    _write(ws, ctx(ws, "LlamaOpenVINOConfig", "glm_moe_dsa"), [DSA_INDEXER_CACHE.name, MOE_BATCHED_MM.name])
    assert snapshot(ws) == again  # idempotent


def _tiny_indexer(topk: int):
    from transformers import GlmMoeDsaConfig
    from transformers.models.glm_moe_dsa.modeling_glm_moe_dsa import GlmMoeDsaIndexer, GlmMoeDsaRotaryEmbedding

    config = GlmMoeDsaConfig(hidden_size=64, q_lora_rank=32, qk_rope_head_dim=8, index_head_dim=16, index_n_heads=16,
                             index_topk=topk, num_attention_heads=4, num_key_value_heads=4)
    torch.manual_seed(0)
    return GlmMoeDsaIndexer(config, 0).eval(), GlmMoeDsaRotaryEmbedding(config)


def _causal(rows: int, cols: int) -> torch.Tensor:
    past = cols - rows
    allowed = torch.arange(cols)[None, :] <= torch.arange(rows)[:, None] + past
    return torch.zeros(rows, cols).masked_fill(~allowed, torch.finfo(torch.float32).min)[None]


@pytest.mark.parametrize("topk", [4, 64])  # fewer keys than the sequence's, and more
def test_replacement_selects_the_keys_the_model_selects_with_its_past_in_the_cache(topk):
    indexer, rope = _tiny_indexer(topk)
    namespace = {"torch": torch, "F": F}
    exec(forward_source("replacement", "glm_moe_dsa", INDEXER), namespace)  # noqa: S102 - the generated source
    length, prefill = 24, 16
    hidden, q_resid = torch.randn(1, length, 64), torch.randn(1, length, 32)
    pos = rope(hidden, torch.arange(length)[None])
    with torch.no_grad():
        # the model: a prompt, then one token at a time through its module-held key cache
        want = [indexer(hidden[:, :prefill], q_resid[:, :prefill], tuple(p[:, :prefill] for p in pos),
                        _causal(prefill, prefill), use_cache=True)]
        for t in range(prefill, length):
            want.append(indexer(hidden[:, t:t + 1], q_resid[:, t:t + 1], tuple(p[:, t:t + 1] for p in pos),
                                _causal(1, t + 1), use_cache=True))
        # the replacement: the same steps, its past keys handed in and collected as the export does
        replaced = types.MethodType(namespace["replacement"], indexer)
        indexer._ov_past_keys = torch.zeros(1, 0, 16)
        got = []
        for start, end in [(0, prefill)] + [(t, t + 1) for t in range(prefill, length)]:
            got.append(replaced(hidden[:, start:end], q_resid[:, start:end], tuple(p[:, start:end] for p in pos),
                                _causal(end - start, end)))
            indexer._ov_past_keys = indexer._ov_present_keys
    for (start, end), w, g in zip([(0, prefill)] + [(t, t + 1) for t in range(prefill, length)], want, got):
        assert g.shape[-1] == topk  # a constant k, whatever the sequence length
        # keys a query may attend to (which masked ones fill the top-k is a tie, and masked anyway)
        visible = [set(range(start + i + 1)) for i in range(end - start)]
        assert [set(r) & v for r, v in zip(w[0].tolist(), visible)] == \
            [set(r) & v for r, v in zip(g[0].tolist(), visible)]
    assert any(len(set(r)) < len(v) for r, v in zip(w[0].tolist(), visible)) == (topk < length)  # sparse: dropped
