"""DeepSeek-style sparse attention (DSA): the indexer's keys exported as one more cache tensor per layer.

GLM-5's attention (transformers' GlmMoeDsa) is multi-head latent attention masked by an indexer: per query,
the indexer scores every key with its own small projections and keeps the `index_topk` best; the rest are
masked out. The indexer keeps the keys it scores on the module (`self._cached_keys`, reset on every
prompt), outside the cache the model returns, so an export decoding from a past cache would score the new
token against no history (tracing fails on it: the scores cover the new tokens, the mask the whole cache).
Its top-k also takes `min(index_topk, keys)`, a count that depends on the sequence length.

This pattern exports the indexer's keys with the key/value cache: a generator adds a
(batch, past length, index_head_dim) tensor to each layer's MLA key and value, the config names it
`past_key_values.<i>.indexer_key` / `present.<i>.indexer_key` (the stateful transformation keeps every
`key_values` input as a state, batch first), and the patcher hands each indexer its past keys and
collects its present ones around the traced forward. The indexer's forward is replaced by the same
computation reading that state, with its top-k taken over the scores padded with -inf to index_topk
columns: the keys it selects are the ones topk(min(index_topk, keys)) selects, with a constant k.

It applies only where the model's indexer forward and the attention forward calling it are, statement
for statement, the ones the replacement was written from (their AST, docstrings aside, without names of
local positions): a changed scoring, mask or cache rule is left to a hand-written patch. The verifier's
long sequence and step-by-step decode then run beyond index_topk (tools/tiny/shrink.py shrinks it).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache

from tools.targets.optimum_intel.patch import ModuleBlock, PatcherBlock
from tools.targets.optimum_intel.patterns.base import MLA_GENERATOR, Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import (INPUT_GENERATORS, MODEL_PATCHER, function_name,
                                                       module_classes, top_level_classes)
from tools.targets.optimum_intel.patterns.moe import (MOE_BATCHED_MM, PATCHER_MODULE, _modeling, base_patcher,
                                                      patcher_name)

# sha256 of the forwards the replacement below was written from (transformers 5.2-5.5 GlmMoeDsa)
INDEXER_FORWARD = "ed3d40d037bf6172"
ATTENTION_FORWARD = "5475da0fa45222c2"
CONFIG_SIZES = ("index_topk", "index_head_dim", "index_n_heads")
GENERATOR = "OVDsaIndexerDummyPastKeyValuesGenerator"
AXES = "add_past_key_values_with_indexer_keys"
GENERATORS_IMPORT = "optimum.exporters.openvino.input_generators"
STATE = "indexer_key"  # the cache tensor's name: past_key_values.<i>.indexer_key


def fingerprint(fn: ast.FunctionDef) -> str:
    """The function's AST without its docstring, name and source positions."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    node = ast.FunctionDef(name="f", args=fn.args, body=body, decorator_list=[], returns=None, type_params=[])
    return hashlib.sha256(ast.dump(node, include_attributes=False).encode()).hexdigest()[:16]


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == name), None)


def indexer_in(tree: ast.Module | None) -> tuple[str, str] | None:
    """(indexer class, attention class) of a modeling module whose indexer and attention forwards are the
    known DSA ones and whose attention's __init__ builds that indexer as `self.indexer`; else None."""
    classes = {n.name: n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)}
    indexers = [name for name, c in classes.items()
                if (f := _method(c, "forward")) is not None and fingerprint(f) == INDEXER_FORWARD]
    for name, cls in classes.items():
        forward, init = _method(cls, "forward"), _method(cls, "__init__")
        if forward is None or init is None or fingerprint(forward) != ATTENTION_FORWARD:
            continue
        built = {ast.unparse(n.value.func) for n in ast.walk(init) if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Call) and any(ast.unparse(t) == "self.indexer" for t in n.targets)}
        found = [i for i in indexers if i in built]
        if len(found) == 1:
            return found[0], name
    return None


@lru_cache(maxsize=256)
def dsa_indexer(model_type: str) -> tuple[str, str] | None:
    return indexer_in(_modeling(model_type))


def _matches(ctx: PatternContext) -> tuple[str, str] | None:
    found = dsa_indexer(ctx.model_type)
    if found is None or ctx.analysis.get("text_config_key"):
        return None
    if any(not isinstance(ctx.exposes(k), int) for k in CONFIG_SIZES):
        return None  # the generator and the replacement read these from the config
    if MLA_GENERATOR not in module_classes(ctx.workspace, INPUT_GENERATORS):
        return None  # the indexer's keys extend optimum-intel's MLA cache generator
    return found


def _applies(ctx: PatternContext) -> str | None:
    found = _matches(ctx)
    if found is None:
        return None
    return (f"{found[0]} keeps the keys it scores on the module, outside the cache, and takes a top-k "
            f"of min(index_topk={ctx.exposes('index_topk')}, keys): {found[1]} would decode from a past cache with "
            f"no indexer history; the export carries them as past_key_values.<i>.{STATE}")


def generator_source() -> str:
    return (f"class {GENERATOR}({MLA_GENERATOR}):\n"
            f'    """\n'
            f"    Multi-head latent attention caches plus, per layer, the keys a DSA indexer scores queries against:\n"
            f"    (batch_size, past_sequence_length, index_head_dim).\n"
            f'    """\n'
            f"\n"
            f"    def __init__(self, task: str, normalized_config: NormalizedTextConfig, **kwargs):\n"
            f"        super().__init__(task=task, normalized_config=normalized_config, **kwargs)\n"
            f"        self.index_head_dim = normalized_config.index_head_dim\n"
            f"\n"
            f'    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", '
            f'float_dtype: str = "fp32"):\n'
            f"        index_shape = (self.batch_size, self.sequence_length, self.index_head_dim)\n"
            f"        return [\n"
            f"            (key, value, self.random_float_tensor(index_shape, framework=framework, dtype=float_dtype))\n"
            f"            for key, value in super().generate(input_name, framework, int_dtype, float_dtype)\n"
            f"        ]\n")


def axes_source() -> str:
    return (f"def {AXES}(self, inputs_or_outputs: dict[str, dict[int, str]], direction: str):\n"
            f"    # a DSA indexer's keys follow each layer's key and value, in the order {GENERATOR}\n"
            f"    # generates them: (batch_size, sequence, index_head_dim)\n"
            f'    if direction == "inputs":\n'
            f'        sequence, name = "past_sequence_length", "past_key_values"\n'
            f"    else:\n"
            f'        sequence, name = "past_sequence_length + sequence_length", "present"\n'
            f"    for i in range(self._normalized_config.num_layers):\n"
            f'        inputs_or_outputs[f"{{name}}.{{i}}.key"] = {{0: "batch_size", 2: sequence}}\n'
            f'        inputs_or_outputs[f"{{name}}.{{i}}.value"] = {{0: "batch_size", 2: sequence}}\n'
            f'        inputs_or_outputs[f"{{name}}.{{i}}.{STATE}"] = {{0: "batch_size", 1: sequence}}\n')


def forward_source(name: str, model_type: str, indexer: str) -> str:
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    module = model_type_to_module_name(model_type)
    return (f"def {name}(self, hidden_states, q_resid, position_embeddings, attention_mask, use_cache=False):\n"
            f"    # {indexer}.forward with its keys carried by the exported cache (`_ov_past_keys` in,\n"
            f"    # `_ov_present_keys` out) instead of a module attribute reset on every prompt, and its top-k\n"
            f"    # taken over the scores padded with -inf to index_topk columns: the keys topk(min(index_topk, T))\n"
            f"    # selects, with a k that does not depend on the sequence length.\n"
            f"    from transformers.models.{module}.modeling_{module} import apply_rotary_pos_emb as rope\n"
            f"\n"
            f"    batch_size, seq_len, _ = hidden_states.shape\n"
            f"    cos, sin = position_embeddings\n"
            f"    rope_dims = [self.qk_rope_head_dim, self.head_dim - self.qk_rope_head_dim]\n"
            f"\n"
            f"    q = self.wq_b(q_resid).view(batch_size, seq_len, self.n_heads, self.head_dim)\n"
            f"    q_pe, q_nope = torch.split(q, rope_dims, dim=-1)\n"
            f"    q = torch.cat([rope(q_pe, cos, sin, unsqueeze_dim=2), q_nope], dim=-1)\n"
            f"\n"
            f"    k = self.k_norm(self.wk(hidden_states))\n"
            f"    k_pe, k_nope = torch.split(k, rope_dims, dim=-1)\n"
            f"    k = torch.cat([rope(k_pe.unsqueeze(2), cos, sin, unsqueeze_dim=2).squeeze(2), k_nope], dim=-1)\n"
            f"    past_keys = getattr(self, \"_ov_past_keys\", None)\n"
            f"    k_cached = torch.cat([past_keys, k], dim=1) if past_keys is not None else k\n"
            f"    self._ov_present_keys = k_cached\n"
            f"\n"
            f"    weights = self.weights_proj(hidden_states).float() * (self.n_heads**-0.5)\n"
            f"    scores = torch.einsum(\"bshd,btd->bsht\", q.float(), k_cached.float()) * self.softmax_scale\n"
            f"    index_scores = torch.einsum(\"bsht,bsh->bst\", F.relu(scores), weights)\n"
            f"    if attention_mask is not None:\n"
            f"        index_scores = index_scores + attention_mask\n"
            f"\n"
            f"    padding = torch.full_like(index_scores[..., :1], float(\"-inf\")).expand(-1, -1, self.index_topk)\n"
            f"    values, indices = torch.cat([index_scores, padding], dim=-1).topk(self.index_topk, dim=-1)\n"
            f"    # a padding column (fewer keys than index_topk) stands for the best key, selected anyway\n"
            f"    return torch.where(torch.isfinite(values), indices, indices[..., :1])\n")


def patcher_source(name: str, base: str, indexer: str, forward: str) -> str:
    return (f"class {name}({base}):\n"
            f"    # {indexer} keeps the keys it scores outside the cache: each layer's cache is exported as\n"
            f"    # (key, value, indexer keys), the indexer keys handed to {forward} and collected from it.\n"
            f"    def __init__(\n"
            f"        self,\n"
            f"        config: \"OpenVINOConfig\",\n"
            f"        model: \"PreTrainedModel\",\n"
            f"        model_kwargs: Optional[Dict[str, Any]] = None,\n"
            f"    ):\n"
            f"        super().__init__(config, model, model_kwargs)\n"
            f"        indexers = (m for m in model.modules() if type(m).__name__ == \"{indexer}\")\n"
            f"        self._indexers = sorted(indexers, key=lambda m: m.layer_idx)\n"
            f"        inner_forward = self.patched_forward\n"
            f"\n"
            f"        @functools.wraps(inner_forward)\n"
            f"        def patched_forward(*args, **kwargs):\n"
            f"            past_key_values = kwargs.get(\"past_key_values\")\n"
            f"            if past_key_values is not None:\n"
            f"                kwargs[\"past_key_values\"] = [layer[:2] for layer in past_key_values]\n"
            f"            for i, indexer in enumerate(self._indexers):\n"
            f"                indexer._ov_past_keys = past_key_values[i][2] if past_key_values is not None else None\n"
            f"            outputs = inner_forward(*args, **kwargs)\n"
            f"            if outputs.get(\"past_key_values\") is not None:\n"
            f"                outputs[\"past_key_values\"] = [\n"
            f"                    (*layer[:2], indexer._ov_present_keys)\n"
            f"                    for layer, indexer in zip(outputs[\"past_key_values\"], self._indexers)\n"
            f"                ]\n"
            f"            return outputs\n"
            f"\n"
            f"        self.patched_forward = patched_forward\n"
            f"\n"
            f"    def __enter__(self):\n"
            f"        super().__enter__()\n"
            f"        for indexer in self._indexers:\n"
            f"            indexer._ov_orig_forward = indexer.forward\n"
            f"            indexer.forward = types.MethodType({forward}, indexer)\n"
            f"\n"
            f"    def __exit__(self, exc_type, exc_value, traceback):\n"
            f"        super().__exit__(exc_type, exc_value, traceback)\n"
            f"        for indexer in self._indexers:\n"
            f"            indexer.forward = indexer._ov_orig_forward\n"
            f"            for name in (\"_ov_orig_forward\", \"_ov_past_keys\", \"_ov_present_keys\"):\n"
            f"                if hasattr(indexer, name):\n"
            f"                    delattr(indexer, name)\n")


def _names(ctx: PatternContext) -> tuple[str, str]:
    """(patcher, its base): after the MoE pattern's patcher when both apply, so the export gets both."""
    if MOE_BATCHED_MM.name in ctx.selected:
        moe = patcher_name(ctx)
        taken = set(top_level_classes(ctx.workspace, MODEL_PATCHER)) | {moe}
        stem = moe.removesuffix("ModelPatcher")
        name = next(n for n in [f"{stem}IndexerCachePatcher"] + [f"{stem}IndexerCachePatcher{k}" for k in range(2, 10)]
                    if n not in taken)
        return name, moe
    return patcher_name(ctx), base_patcher(ctx)


def _edit(ctx: PatternContext) -> PatternEdit:
    found = _matches(ctx)
    if found is None:
        raise ValueError(f"{ctx.model_type}: no DSA indexer of the known shape")
    indexer, attention = found
    name, base = _names(ctx)
    forward = function_name(ctx.model_type, "indexer_forward")
    return PatternEdit(
        class_attrs={"DUMMY_INPUT_GENERATOR_CLASSES": f"(DummyTextInputGenerator, {GENERATOR})",
                     "DUMMY_PKV_GENERATOR_CLASS": GENERATOR, "add_past_key_values": AXES, "_MODEL_PATCHER": name},
        imports=[("optimum.utils.input_generators", "DummyTextInputGenerator"), (GENERATORS_IMPORT, GENERATOR),
                 (GENERATORS_IMPORT, AXES), (PATCHER_MODULE, name)],
        module_blocks=[ModuleBlock(file=INPUT_GENERATORS, after=MLA_GENERATOR, source=generator_source()),
                       ModuleBlock(file=INPUT_GENERATORS, after=GENERATOR, source=axes_source())],
        patchers=[PatcherBlock(name=forward, after=base_patcher(ctx), source=forward_source(forward, ctx.model_type,
                                                                                            indexer)),
                  PatcherBlock(name=name, after=forward, source=patcher_source(name, base, indexer, forward))],
        note=f"{name}({base}) exports {indexer}'s keys as past_key_values.<i>.{STATE} and gives it {forward}")


DSA_INDEXER_CACHE = Pattern("dsa_indexer_cache", "export a DSA indexer's keys as one more cache tensor per layer, "
                            "its top-k with a constant k", _applies, _edit)
