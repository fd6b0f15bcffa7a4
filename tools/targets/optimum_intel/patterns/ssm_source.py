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


def family_source(model_type: str, names: tuple[tuple[str, str], ...], has_attention: bool) -> str:
    """The config-copy function and the normalized config reading it (model_patcher.py)."""
    fn = family_function(model_type)
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
