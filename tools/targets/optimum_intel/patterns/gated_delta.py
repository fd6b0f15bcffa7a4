"""Gated-delta-rule linear attention with separate q/k/v short convolutions, in a hybrid with attention.

optimum-intel exports Qwen3-Next's GatedDeltaNet by running the gated delta rule in its recurrent form
(`RecurrentAttentionCell`, converted to an OpenVINO loop by `convert_recurrent_attention_cell`) and the short
convolution as `ov_causal_conv1d`, and it carries the cache as one conv state and one recurrent state per
"linear_attention" layer plus keys and values per "full_attention" layer (`Qwen3NextOpenVINOConfig` and its
dummy generator read the sizes from `linear_*` config names and count the layer kinds in `layer_types`).

A mixer that projects q, k, v separately and convolves each with its own depthwise causal conv computes the
same thing as one depthwise conv over the concatenated q/k/v: its conv state is Qwen3-Next's stacked one, of
the width `2 * key_dim + value_dim` the family's generator builds. This pattern gives such a model a patcher
(patterns/gated_delta_source.py) that installs that recurrent form on every module of its mixer classes and
maps the flat states onto the decoder layers by `config.layer_types`, registers it on the family's export
config (its transformers cap belongs to Qwen3-Next's own patcher, which this one does not use), and joins
the family's lists (SSM_MODELS, the runtime's full-context attention mask, the hybrid tests).

Which mixers: a class whose forward computes, without a cache, what REFERENCE_FORWARD below computes (up to
local names, patterns/ssm_family.py): the recurrent form is written for exactly that computation. Which
layouts: the model is built on the meta device and each decoder layer must be the kind `layer_types` names,
with every size the family's generator reads equal to the modules' own. Anything else is left alone.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

from tools.targets.optimum_intel.patch import PatcherBlock
from tools.targets.optimum_intel.patterns.base import Pattern, PatternContext, PatternEdit
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, module_defs
from tools.targets.optimum_intel.patterns.gated_delta_source import CELL, CONV, RULE, patcher_source
from tools.targets.optimum_intel.patterns.moe import PATCHER_MODULE, _modeling, patcher_name
from tools.targets.optimum_intel.patterns.ssm_family import prefill_shape
from tools.targets.optimum_intel.patterns.ssm_layout import _decoder_layers, read_layout

REFERENCE = "qwen3_next"  # the family whose cache layout and export config this pattern follows
REFERENCE_PATCHER = "Qwen3NextModelPatcher"
REFERENCE_GENERATOR = "Qwen3NextDummyPastKeyValuesGenerator"
LINEAR, FULL = "linear_attention", "full_attention"  # the labels the family's config and generator count
# what model_patcher.py must define for the written patcher (the recurrent form's parts)
HELPERS = (CELL, RULE, CONV, "convert_recurrent_attention_cell", REFERENCE_PATCHER)

# The computation the recurrent form reproduces (the prefill path: cache branches are dropped before
# comparing): separate q/k/v projections each through its own short conv, heads repeated to the value
# heads, beta from b (doubled when negative eigenvalues are allowed), the decay from a, A_log and dt_bias,
# the l2-normalized gated delta rule, a gated RMS norm with g, and the output projection.
REFERENCE_FORWARD = '''
def forward(self, hidden_states, cache_params=None, attention_mask=None, **kwargs: Unpack[TransformersKwargs]):
    hidden_states = apply_mask_to_padding_states(hidden_states, attention_mask)
    batch_size, seq_len, _ = hidden_states.shape
    use_cache = cache_params is not None
    use_precomputed = use_cache and cache_params.has_previous_state() and seq_len == 1
    conv_state_q = cache_params.conv_states_q[self.layer_idx] if cache_params else None
    conv_state_k = cache_params.conv_states_k[self.layer_idx] if cache_params else None
    conv_state_v = cache_params.conv_states_v[self.layer_idx] if cache_params else None
    recurrent_state = cache_params.recurrent_states[self.layer_idx] if cache_params else None
    q = self.q_proj(hidden_states)
    k = self.k_proj(hidden_states)
    v = self.v_proj(hidden_states)
    q, new_conv_state_q = self.q_conv1d(q, cache=conv_state_q, use_precomputed=use_precomputed,
                                        output_final_state=use_cache)
    k, new_conv_state_k = self.k_conv1d(k, cache=conv_state_k, use_precomputed=use_precomputed,
                                        output_final_state=use_cache)
    v, new_conv_state_v = self.v_conv1d(v, cache=conv_state_v, use_precomputed=use_precomputed,
                                        output_final_state=use_cache)
    if cache_params is not None:
        cache_params.conv_states_q[self.layer_idx] = new_conv_state_q
    q = q.view(batch_size, seq_len, -1, self.head_k_dim)
    k = k.view(batch_size, seq_len, -1, self.head_k_dim)
    v = v.view(batch_size, seq_len, -1, self.head_v_dim)
    if self.num_v_heads > self.num_k_heads:
        expand_ratio = self.num_v_heads // self.num_k_heads
        q = q.repeat_interleave(expand_ratio, dim=2)
        k = k.repeat_interleave(expand_ratio, dim=2)
    beta = self.b_proj(hidden_states).sigmoid()
    if self.allow_neg_eigval:
        beta = beta * 2.0
    g = -self.A_log.float().exp() * F.softplus(self.a_proj(hidden_states).float() + self.dt_bias)
    if use_precomputed:
        output, new_recurrent_state = self.recurrent_gated_delta_rule(
            q, k, v, g=g, beta=beta, initial_state=recurrent_state, output_final_state=use_cache,
            use_qk_l2norm_in_kernel=True)
    else:
        output, new_recurrent_state = self.chunk_gated_delta_rule(
            q, k, v, g=g, beta=beta, initial_state=recurrent_state, output_final_state=use_cache,
            use_qk_l2norm_in_kernel=True)
    if cache_params is not None:
        cache_params.recurrent_states[self.layer_idx] = new_recurrent_state
    gate = self.g_proj(hidden_states)
    output = output.reshape(-1, self.head_v_dim)
    gate = gate.reshape(-1, self.head_v_dim)
    output = self.o_norm(output, gate)
    output = output.reshape(batch_size, seq_len, -1)
    output = self.o_proj(output)
    return output
'''


def _reference_shape() -> str:
    return prefill_shape(ast.parse(REFERENCE_FORWARD).body[0])


@lru_cache(maxsize=256)
def mixer_classes(model_type: str) -> tuple[str, ...]:
    """Classes of the model's modeling module whose forward computes, without a cache, REFERENCE_FORWARD."""
    tree, ref = _modeling(model_type), _reference_shape()
    out = []
    for cls in (n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef)):
        forward = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward"), None)
        if forward is not None and prefill_shape(forward) == ref:
            out.append(cls.name)
    return tuple(out)


# -- the cache layout, read from the model itself ---------------------------------------------------------

def _expected(config) -> dict[str, int]:
    """The sizes Qwen3-Next's dummy generator reads from a config."""
    return {"num_k_heads": config.linear_num_key_heads, "num_v_heads": config.linear_num_value_heads,
            "head_k_dim": config.linear_key_head_dim, "head_v_dim": config.linear_value_head_dim,
            "kernel": config.linear_conv_kernel_dim,
            "attention_head_dim": getattr(config, "head_dim", None)
            or config.hidden_size // config.num_attention_heads,
            "num_key_value_heads": config.num_key_value_heads}


def _conv_problems(i: int, mixer, want: dict) -> list[str]:
    """The three short convs must be depthwise causal convs of the config's kernel, over q, k and v widths."""
    import torch

    problems = []
    widths = {"q_conv1d": want["num_k_heads"] * want["head_k_dim"], "k_conv1d": want["num_k_heads"] * want["head_k_dim"],
              "v_conv1d": want["num_v_heads"] * want["head_v_dim"]}
    for name, width in widths.items():
        conv = getattr(mixer, name, None)
        if not isinstance(conv, torch.nn.Conv1d) or not callable(getattr(conv, "act_fn", None)):
            problems.append(f"layer {i}: {name} is not a torch Conv1d with an activation")
            continue
        shape = (conv.in_channels, conv.out_channels, conv.groups, conv.kernel_size[0], conv.padding[0])
        if shape != (width, width, width, want["kernel"], want["kernel"] - 1):
            problems.append(f"layer {i}: {name} (in, out, groups, kernel, padding) {shape} is not a depthwise causal "
                            f"conv of {width} channels and kernel {want['kernel']}")
    biases = {getattr(getattr(mixer, n, None), "bias", None) is None for n in widths}
    if len(biases) > 1:
        problems.append(f"layer {i}: some of the q/k/v convs have a bias and some do not")
    return problems


def layout_problems(config, mixers: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(kind of each decoder layer, problems): empty problems when the family's cache fits the model."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    if layers is None:
        return [], [f"no module list of {config.num_hidden_layers} decoder layers"]
    try:
        want = _expected(config)
    except (AttributeError, TypeError) as exc:
        return [], [f"the config lacks a size the family's generator reads ({exc})"]
    kinds, problems = [], []
    for i, layer in enumerate(layers):
        linear = [m for m in layer.modules() if type(m).__name__ in mixers]
        attn = [m for m in layer.modules() if hasattr(m, "k_proj") and hasattr(m, "head_dim")
                and type(m).__name__ not in mixers]
        kind = LINEAR if linear and not attn else FULL if attn and not linear else "other"
        kinds.append(kind)
        for m in linear:
            if getattr(m, "layer_idx", None) != i:
                problems.append(f"layer {i}: its mixer's layer_idx is {getattr(m, 'layer_idx', None)}")
            problems += [f"layer {i}: mixer {a} {getattr(m, a, None)} != {want[a]} read from the config"
                         for a in ("num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim")
                         if getattr(m, a, None) != want[a]]
            problems += _conv_problems(i, m, want)
        for m in attn:
            kv = m.k_proj.out_features // m.head_dim
            if (m.head_dim, kv) != (want["attention_head_dim"], want["num_key_value_heads"]):
                problems.append(f"layer {i}: attention of {kv} key/value heads of {m.head_dim}, the config says "
                                f"{want['num_key_value_heads']} of {want['attention_head_dim']}")
    if want["num_v_heads"] % want["num_k_heads"]:
        # the family's generator sizes the conv state with num_v_heads // num_k_heads
        problems.append(f"{want['num_v_heads']} value heads are not a multiple of {want['num_k_heads']} key heads")
    labels = list(getattr(config, "layer_types", None) or [])
    if labels != kinds:
        problems.append(f"config.layer_types {labels} does not name the layers the model builds ({kinds})")
    if LINEAR not in kinds or FULL not in kinds:
        problems.append(f"not a hybrid: the layers are {sorted(set(kinds))}")
    return kinds, problems


@lru_cache(maxsize=32)
def _layout(model_type: str, raw_json: str, mixers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return read_layout(model_type, raw_json, lambda c: layout_problems(c, mixers), ())


def layout(ctx: PatternContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _layout(ctx.model_type, json.dumps(ctx.raw, sort_keys=True, default=str), mixer_classes(ctx.model_type))


def _workspace_has_family(workspace: Path) -> bool:
    defs = module_defs(workspace, MODEL_PATCHER)
    text = (Path(workspace) / MODEL_PATCHER).read_text(encoding="utf-8") if (Path(workspace) / MODEL_PATCHER).is_file() else ""
    return all(h in defs for h in HELPERS[:3] + HELPERS[4:]) and HELPERS[3] in text


def family_bases(analysis: dict, workspace: Path, registry: dict[str, str]) -> list[tuple[str, str]]:
    """(base model type, why) for search: the family to follow when the model has such a mixer. Its cap on
    transformers does not hold the new class back: the pattern lifts it (see the module doc)."""
    found = mixer_classes(analysis["model_type"])
    if not found or REFERENCE not in registry or not _workspace_has_family(Path(workspace)):
        return []
    raw = json.dumps(analysis.get("raw_text_config") or {}, sort_keys=True, default=str)
    kinds, problems = _layout(analysis["model_type"], raw, found)
    if not kinds or problems:
        return []  # the pattern will not apply: the family's capped config alone is no candidate to try first
    return [(REFERENCE, f"{', '.join(found)} is a gated-delta-rule mixer with separate q/k/v short convs: the "
                        f"hybrid cache layout optimum-intel exports {REFERENCE} with")]


# -- the pattern ----------------------------------------------------------------------------------------

def _fits(ctx: PatternContext) -> bool:
    if not mixer_classes(ctx.model_type) or not _workspace_has_family(ctx.workspace):
        return False
    if ctx.base_name("_MODEL_PATCHER") != REFERENCE_PATCHER or ctx.base_name("DUMMY_PKV_GENERATOR_CLASS") != REFERENCE_GENERATOR:
        return False  # the edit keeps the family's config methods and generator: only with that base
    kinds, problems = layout(ctx)
    return bool(kinds) and not problems


def _applies(ctx: PatternContext) -> str | None:
    if not _fits(ctx):
        return None
    kinds, _ = layout(ctx)
    return (f"{', '.join(mixer_classes(ctx.model_type))} runs the gated delta rule over separately convolved "
            f"q/k/v and the layers ({kinds.count(LINEAR)} linear attention, {kinds.count(FULL)} attention) are what "
            f"config.layer_types says, with the sizes {ctx.base_class}'s generator reads: the stacked conv and "
            f"{CELL} replace the mixer")


def _edit(ctx: PatternContext) -> PatternEdit:
    name, mixers = patcher_name(ctx), mixer_classes(ctx.model_type)
    kinds, _ = layout(ctx)
    doc = (f"{', '.join(mixers)}: gated delta rule over q, k and v convolved separately (the same depthwise "
           f"conv as one over their concatenation)")
    return PatternEdit(
        # the family's cap is its own patcher's (written for an older transformers' Qwen3-Next), not used here
        class_attrs={"_MODEL_PATCHER": name, "MAX_TRANSFORMERS_VERSION": "None"},
        imports=[(PATCHER_MODULE, name)],
        patchers=[PatcherBlock(name=name, after=REFERENCE_PATCHER, source=patcher_source(name, mixers, LINEAR, FULL, doc))],
        joins=[REFERENCE],
        note=(f"{name}(OVDecoderModelPatcher) installs the stacked q/k/v conv and {CELL} on {', '.join(mixers)}; "
              f"cache layout read from the model: {kinds.count(LINEAR)} linear-attention and {kinds.count(FULL)} "
              f"attention layers"))


GATED_DELTA_HYBRID = Pattern("gated_delta_hybrid_cache", "export a gated-delta-rule/attention hybrid whose mixer "
                             "convolves q, k and v separately through optimum-intel's recurrent cell and "
                             "Qwen3-Next's hybrid cache", _applies, _edit)
