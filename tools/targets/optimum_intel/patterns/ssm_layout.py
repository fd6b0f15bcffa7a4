"""The cache layout the hybrid Mamba2 cache pattern reads from the instantiated model (patterns/ssm_hybrid.py).

Each decoder layer's kind (a mixer, an attention, or both: "hybrid") must be what `config.layer_types` says at
that index, and every mixer's and attention's state sizes must equal what GraniteMoeHybrid's dummy generator
derives from the config (through the family config copy the pattern writes when the model spells it otherwise).
A layer of neither kind (MLP or MoE) is labelled as neither and holds no module taking a cache.
"""

from __future__ import annotations

import json

from tools.targets.optimum_intel.patterns.ssm_family import own_value

# what GraniteMoeHybridOpenVINOConfig and its generator count in config.layer_types, per layer kind
LABELS = {"ssm": "mamba", "attention": "attention", "hybrid": "hybrid"}


def _expected(config, names=(), own_width: str | None = None) -> dict[str, int]:
    """The state sizes GraniteMoeHybrid's dummy generator derives from a config (through `names`, the
    family's config names -> the model's, when the model spells them otherwise, and the family config's
    expand factor for a width the model's config gives outright: patterns/ssm_source.py)."""
    own = dict(names)
    size = {n: own_value(config, own.get(n, n)) for n in ("mamba_expand", "mamba_n_groups", "mamba_d_state",
                                                         "mamba_d_conv", "mamba_n_heads", "mamba_d_head")}
    if own_width and getattr(config, own_width, None) is not None:
        size["mamba_expand"] = getattr(config, own_width) / config.hidden_size
    return {"conv_dim": int(size["mamba_expand"] * config.hidden_size)
            + 2 * size["mamba_n_groups"] * size["mamba_d_state"],
            "conv_kernel_size": size["mamba_d_conv"], "num_heads": size["mamba_n_heads"],
            "head_dim": size["mamba_d_head"], "ssm_state_size": size["mamba_d_state"]}


def _expected_attention(config) -> dict[str, int]:
    hidden, heads = config.hidden_size, config.num_attention_heads
    return {"attention_head_dim": getattr(config, "head_dim", None) or hidden // heads,
            "num_key_value_heads": config.num_key_value_heads}


def _decoder_layers(model, n_layers: int):
    """The module list holding one module per decoder layer."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    return lists[0] if lists else None


def _cache_taking(layer) -> list[str]:
    """Modules inside a decoder layer (not the layer itself) whose forward takes a cache argument."""
    import inspect

    names = ("past_key_values", "past_key_value", "cache_params", "layer_past")
    return [type(m).__name__ for m in layer.modules() if m is not layer
            and any(n in inspect.signature(m.forward).parameters for n in names)]


def layout_problems(config, mixers: tuple[str, ...], names=(), own_width: str | None = None
                    ) -> tuple[list[str], list[str]]:
    """(kind of each decoder layer, problems): empty problems when the family's cache fits the model.
    A config naming no layer kinds (`layer_types`, `layers_block_type`) fits only a model of Mamba layers
    alone: the family config the patch writes for it says so. A layer holding a mixer and an attention is
    "hybrid", and fits only a config naming it so (each gets its own cache pair: patterns/ssm_source.py)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layers = _decoder_layers(model, config.num_hidden_layers)
    if layers is None:
        return [], [f"no module list of {config.num_hidden_layers} decoder layers"]
    try:
        want = _expected(config, names, own_width)
    except (AttributeError, TypeError) as exc:
        return [], [f"the config lacks a size the family's generator reads ({exc})"]
    kinds, problems, attention = [], [], []
    for i, layer in enumerate(layers):
        ssm = [m for m in layer.modules() if type(m).__name__ in mixers]
        attn = [m for m in layer.modules() if hasattr(m, "k_proj") and hasattr(m, "head_dim")]
        kind = ("hybrid" if len(ssm) == len(attn) == 1 else "ssm" if ssm and not attn
                else "attention" if attn and not ssm else "other")
        kinds.append(kind)
        if kind == "other" and (cached := _cache_taking(layer)):
            # the family carries states for Mamba and attention layers only
            problems.append(f"layer {i}: neither a mixer nor an attention, but {cached} take(s) a cache")
        attention += [(i, m) for m in attn]
        for m in ssm:
            if getattr(m, "layer_idx", None) != i:
                problems.append(f"layer {i}: its mixer's layer_idx is {getattr(m, 'layer_idx', None)}")
            problems += [f"layer {i}: mixer {a} {getattr(m, a, None)} != {want[a]} read from the config"
                         for a in ("conv_dim", "conv_kernel_size", "num_heads", "head_dim", "ssm_state_size")
                         if getattr(m, a, None) != want[a]]
            width = getattr(getattr(m, "in_proj", None), "out_features", None)
            if width != want["conv_dim"] + (getattr(m, "intermediate_size", 0) or 0) + want["num_heads"]:
                # the recurrent form splits the projection in gate, conv input and dt: nothing else
                problems.append(f"layer {i}: in_proj gives {width} features, not gate + conv input + dt")
    if attention:
        try:
            want.update(_expected_attention(config))
        except (AttributeError, TypeError) as exc:
            return kinds, problems + [f"the config lacks an attention size the family's generator reads ({exc})"]
    for i, m in attention:
        kv = m.k_proj.out_features // m.head_dim
        if (m.head_dim, kv) != (want["attention_head_dim"], want["num_key_value_heads"]):
            problems.append(f"layer {i}: attention of {kv} key/value heads of {m.head_dim}, the config says "
                            f"{want['num_key_value_heads']} of {want['attention_head_dim']}")
    expected = [LABELS.get(k, k) for k in kinds]
    fits = lambda labels: len(labels) == len(kinds) and all(  # noqa: E731
        label == LABELS[k] if k in LABELS else label not in LABELS.values() for label, k in zip(labels, kinds))
    if not any(getattr(config, a, None) for a in ("layer_types", "layers_block_type")):
        if set(kinds) != {"ssm"}:
            problems.append(f"the config names no layer kinds and the model's layers are not all Mamba ({expected})")
        return kinds, problems
    for attr in ("layer_types", "layers_block_type"):
        if getattr(config, attr, None) is None:
            continue  # the family config the patch writes copies the other one
        labels = list(getattr(config, attr, None) or [])
        if not fits(labels):  # a layer of neither kind (MLP, MoE) may be labelled anything but the family's kinds
            problems.append(f"config.{attr} {labels} does not name the layers the model builds ({expected})")
    return kinds, problems


def _floats(value):
    """transformers 5 writes non-finite floats into config.json as {"__float__": "Infinity"}."""
    if isinstance(value, dict):
        return float(value["__float__"]) if set(value) == {"__float__"} else {k: _floats(v) for k, v in value.items()}
    return [_floats(v) for v in value] if isinstance(value, list) else value


def read_layout(model_type: str, raw_json: str, read, empty):
    """(what `read(config)` finds, problems), `config` built from the analysed config itself (a default config
    would describe another model's layers); a config or model transformers cannot build is one problem."""
    from transformers import AutoConfig

    kwargs = {k: _floats(v) for k, v in json.loads(raw_json).items()
              if k not in ("model_type", "architectures", "transformers_version", "auto_map")}
    try:
        config = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers' validation errors have no common type
        return empty, (f"transformers cannot build the model's config: {str(exc)[:200]}",)
    try:
        found, problems = read(config)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be built on the meta device is not this pattern's
        return empty, (f"the model could not be instantiated to read its layout: {str(exc)[:200]}",)
    return (tuple(found) if isinstance(found, list) else found), tuple(problems)
