"""Source the hybrid Mamba2 cache pattern writes for a model that spells the family's config otherwise.

GraniteMoeHybrid's dummy generator, export config and patcher read the Mamba sizes under the family's names
(`mamba_d_state`, ...), the layer kinds from `layer_types` and `layers_block_type`, and call the model with
`past_key_values`. A model whose mixer is the family's but whose config names these otherwise (Mamba2:
`state_size`, `n_groups`, no `layers_block_type`) and whose forward takes the cache as `cache_params` gets:
a function giving a copy of its config under both names (model_patcher.py), a normalized config reading that
copy (the export config's dummy generator and cache inputs read it), a patcher that hands the family's patcher
that copy and passes the cache under the name the model's forward takes, and, where its config names no
intermediate size, the runtime cache class of OVModelWithMambaForCausalLM reads the mixers' one.
"""

from __future__ import annotations

from tools.targets.optimum_intel.patterns.ssm_family import PRODUCT

MODELING_DECODER = "optimum/intel/openvino/modeling_decoder.py"
CACHE_INIT = "OVCacheWithMambaStates.__init__"
CACHE_ANCHOR = "device"  # `self.device = torch.device(...)`: before the cache reads config.intermediate_size


def family_function(model_type: str) -> str:
    return f"{model_type}_family_config"


def normalized_name(patcher: str) -> str:
    return patcher.removesuffix("ModelPatcher") + "FamilyNormalizedConfig"


def family_source(model_type: str, names: tuple[tuple[str, str], ...], has_attention: bool,
                  width: str | None = None, hybrid: bool = False) -> str:
    """The config-copy function and the normalized config reading it (model_patcher.py). `width`: the config
    key giving the mixers' intermediate size outright when set; `hybrid`: layers holding a mixer and an
    attention each (config.layer_types "hybrid"), counted as one of each for the family's cache layout."""
    fn = family_function(model_type)
    own_width = "" if not width else (
        f"    if getattr(config, \"{width}\", None) is not None:\n"
        f"        # the mixers' intermediate size is config.{width}; the family's generator reads\n"
        f"        # mamba_expand * hidden_size (an int field on the model's config: set past its type check)\n"
        f"        object.__setattr__(family, \"mamba_expand\", config.{width} / config.hidden_size)\n")
    layers = "" if not hybrid else (
        "    # a \"hybrid\" layer holds a mixer and an attention: the family's generator and export config count\n"
        "    # one \"mamba\" per mixer and one \"attention\" per attention (the model's kinds may be a read-only\n"
        "    # property: the copy's class leaves them plain values)\n"
        "    family.__class__ = type(type(config).__name__, (type(config),), {\n"
        "        \"layers_block_type\": None, \"__module__\": type(config).__module__})\n"
        "    mixers = sum(kind in (\"mamba\", \"hybrid\") for kind in kinds)\n"
        "    attentions = sum(kind in (\"attention\", \"hybrid\") for kind in kinds)\n"
        "    for name in (\"layer_types\", \"layers_block_type\"):\n"
        "        object.__setattr__(family, name, [\"mamba\"] * mixers + [\"attention\"] * attentions)\n")
    table = "".join(f'        ("{family}", "{own}"),\n' for family, own in names if PRODUCT not in own)
    products = "".join(
        f"    # the mixers' intermediate size is {own.replace(PRODUCT, ' * ')}: the family reads its ratio to\n"
        f"    # hidden_size, kept exact (int(ratio * hidden_size) gives the size back)\n"
        f"    family.{family} = fractions.Fraction(\n"
        f"        {' * '.join('config.' + k for k in own.split(PRODUCT))}, config.hidden_size\n"
        f"    )\n"
        for family, own in names if PRODUCT in own)
    attention = "" if has_attention else (
        "    # no layer of the model is an attention layer: the family's generator still reads these names\n"
        "    for name in (\"num_attention_heads\", \"num_key_value_heads\"):\n"
        "        if getattr(config, name, None) is None:\n"
        "            setattr(family, name, family.mamba_n_heads)\n")
    return (
        f"def {fn}(config):\n"
        f"    # {model_type}'s config names the Mamba-2 sizes otherwise than GraniteMoeHybrid's export reads them:\n"
        f"    # a copy carries the family's names too (the model's own config is left as it is)\n"
        f"    if getattr(config, \"_ov_family_config\", False):\n"
        f"        return config\n"
        f"    import copy\n"
        + ("    import fractions\n" if products else "") +
        f"\n"
        f"    family = copy.copy(config)\n"
        f"    for family_name, own_name in (\n{table}    ):\n"
        f"        setattr(family, family_name, getattr(config, own_name))\n"
        f"{products}"
        f"    kinds = getattr(config, \"layers_block_type\", None) or getattr(config, \"layer_types\", None)\n"
        f"    for name in (\"layer_types\", \"layers_block_type\"):\n"
        f"        if getattr(config, name, None) is None:\n"
        f"            setattr(family, name, list(kinds or [\"mamba\"] * config.num_hidden_layers))\n"
        f"{layers}"
        f"{own_width}"
        f"{attention}"
        f"    family._ov_family_config = True\n"
        f"    return family\n")


def normalized_source(patcher: str, model_type: str) -> str:
    return (
        f"class {normalized_name(patcher)}:\n"
        f"    # the family's dummy generator and cache inputs read the normalized config's model config\n"
        f"    def __new__(cls, config, **kwargs):\n"
        f"        from optimum.utils.normalized_config import NormalizedTextConfig\n"
        f"\n"
        f"        return NormalizedTextConfig({family_function(model_type)}(config), **kwargs)\n")


def cache_init_source(model_type: str, expand: str) -> str:
    """OVCacheWithMambaStates reads config.intermediate_size, which the model's config does not name."""
    size = (" * ".join(f"config.{k}" for k in expand.split(PRODUCT)) if PRODUCT in expand
            else f"int(config.{expand} * config.hidden_size)")
    said = expand.replace(PRODUCT, " * ") if PRODUCT in expand else f"{expand} * hidden_size"
    return (
        f"if config.model_type == \"{model_type}\" and getattr(config, \"intermediate_size\", None) is None:\n"
        f"    # {model_type}'s config names no intermediate size: its mixers' is {said}\n"
        f"    import copy\n"
        f"\n"
        f"    config = copy.copy(config)\n"
        f"    config.intermediate_size = {size}\n")


def layer_cache_function(model_type: str) -> str:
    return f"{model_type}_layer_cache_forward"


def layer_cache_source(model_type: str) -> str:
    """The export forward for a model whose decoder layers each hold a mixer and an attention: the family's
    forward maps one layer to one cache kind (config.layers_block_type); here each mixer has a conv/recurrent
    pair and each attention a key/value pair, keyed by the modules' own layer_idx, in the order the family's
    export config names the cache inputs (every mixer's pair, then every attention's)."""
    fn = layer_cache_function(model_type)
    return (
        f"def {fn}(patcher, mixer_layers, attention_layers):\n"
        f"    # every decoder layer of {model_type} holds a Mamba-2 mixer and an attention: both caches per layer\n"
        f"    class LayerCacheWrap:\n"
        f"        def __init__(self, conv_states, recurrent_states, key_cache, value_cache, attention_mask=None):\n"
        f"            self.conv_states = conv_states\n"
        f"            self.recurrent_states = recurrent_states\n"
        f"            self.key_cache = key_cache\n"
        f"            self.value_cache = value_cache\n"
        f"            self.raw_attention_mask = attention_mask\n"
        f"            self.mamba_mapping = {{layer: i for i, layer in enumerate(mixer_layers)}}\n"
        f"            self.attn_mapping = {{layer: i for i, layer in enumerate(attention_layers)}}\n"
        f"\n"
        f"        def update(self, key_states, value_states, layer_idx, cache_kwargs=None):\n"
        f"            idx = self.attn_mapping[layer_idx]\n"
        f"            self.key_cache[idx] = torch.cat([self.key_cache[idx], key_states], dim=2)\n"
        f"            self.value_cache[idx] = torch.cat([self.value_cache[idx], value_states], dim=2)\n"
        f"            return self.key_cache[idx], self.value_cache[idx]\n"
        f"\n"
        f"        def get_seq_length(self, layer_idx=0):\n"
        f"            if not self.key_cache or self.key_cache[0] is None:\n"
        f"                return 0\n"
        f"            return self.key_cache[0].shape[-2]\n"
        f"\n"
        f"        def get_mask_sizes(self, query_length, layer_idx=0):\n"
        f"            # a scalar query length (transformers >= 5) or a 1-d cache_position (older)\n"
        f"            if hasattr(query_length, \"shape\") and len(query_length.shape) > 0:\n"
        f"                query_length = query_length.shape[0]\n"
        f"            return self.get_seq_length() + query_length, 0\n"
        f"\n"
        f"        @property\n"
        f"        def is_sliding(self):\n"
        f"            return [False]\n"
        f"\n"
        f"        is_compileable = False\n"
        f"\n"
        f"        def has_previous_state(self, layer_idx=None):\n"
        f"            return True\n"
        f"\n"
        f"    def patched_forward(input_ids, attention_mask=None, cache_params=None):\n"
        f"        wrapped = None\n"
        f"        if cache_params is not None:\n"
        f"            mixers, attentions = len(mixer_layers), len(attention_layers)\n"
        f"            wrapped = LayerCacheWrap(\n"
        f"                [cache_params[2 * i] for i in range(mixers)],\n"
        f"                [cache_params[2 * i + 1] for i in range(mixers)],\n"
        f"                [cache_params[2 * mixers + 2 * i] for i in range(attentions)],\n"
        f"                [cache_params[2 * mixers + 2 * i + 1] for i in range(attentions)],\n"
        f"                attention_mask,\n"
        f"            )\n"
        f"        output = patcher.model_orig_forward(\n"
        f"            input_ids=input_ids, attention_mask=attention_mask, past_key_values=wrapped,\n"
        f"            use_cache=wrapped is not None,\n"
        f"        )\n"
        f"        outputs = {{\"logits\": output.logits}}\n"
        f"        if wrapped is not None:\n"
        f"            present = []\n"
        f"            for conv, recurrent in zip(wrapped.conv_states, wrapped.recurrent_states):\n"
        f"                present += [conv, recurrent]\n"
        f"            for key, value in zip(wrapped.key_cache, wrapped.value_cache):\n"
        f"                present += [key, value]\n"
        f"            outputs[\"present_key_values\"] = present\n"
        f"        return outputs\n"
        f"\n"
        f"    return patched_forward\n")
