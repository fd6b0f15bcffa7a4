"""The patcher class the hybrid Mamba2 cache pattern writes (model_patcher.py).

It subclasses GraniteMoeHybridModelPatcher, whose cache wrapper and patched forward carry the flat
conv/recurrent states and key/value tensors, and installs the recurrent form of the model's mixers
(patterns/ssm_forms.py) on every module of their classes while exporting. What else it does depends on the
model: a copy of the config under the family's names (patterns/ssm_source.py) and the cache under the name
the model's forward takes, position ids counted from the mask, and the experts routed through
transformers' batched implementation (patterns/moe_ungated.py).
"""

from __future__ import annotations

from tools.targets.optimum_intel.patterns.moe_ungated import enter_source, exit_source
from tools.targets.optimum_intel.patterns.ssm_forms import GRANITE, MixerForm
from tools.targets.optimum_intel.patterns.ssm_source import family_function, layer_cache_function

REFERENCE_PATCHER = "GraniteMoeHybridModelPatcher"
HELPER = GRANITE.helper
CELL = "SelectiveSSMRecurrentCell"
SAVED = "_ov_ssm_orig_forward"


def patcher_source(name: str, mixers: tuple[str, ...], family: str | None = None, form: MixerForm = GRANITE,
                   helper: str = HELPER, experts: str | None = None, hybrid: bool = False) -> str:
    """The patcher; `family` (the model type) when the model's config and forward spell the family's
    names otherwise (patterns/ssm_source.py): the family's patcher then reads a copy of the config under
    the family's names, and the cache goes to the forward under the name it takes. `helper` is the
    recurrent form of the mixers (`form`'s); `experts` the experts implementation the model's experts
    are routed through while exporting (patterns/moe_ungated.py), None: the experts are left alone. `hybrid`:
    layers holding a mixer and an attention each, whose cache pairs the family's forward cannot map (one kind
    per layer): the model's own modules key them."""
    listed = ", ".join(mixers)
    table = "(" + ", ".join(f'"{m}"' for m in mixers) + ("," if len(mixers) == 1 else "") + ")"
    fn = family_function(family) if family else None
    init = (
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        super().__init__(config, model, model_kwargs)\n"
    ) if not family else (
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        # the family's patcher reads the layer kinds from the export config's model config\n"
        f"        own = config._config\n"
        f"        config._config = {fn}(own)\n"
        f"        try:\n"
        f"            super().__init__(config, model, model_kwargs)\n"
        f"        finally:\n"
        f"            config._config = own\n")
    cache_name = "" if not family else (
        f"        # the family's forward passes the cache as past_key_values: pass it as the model's forward takes it\n"
        f"        parameters = inspect.signature(model_forward).parameters\n"
        f"        cache_name = \"cache_params\" if \"past_key_values\" not in parameters and \"cache_params\" in parameters else None\n")
    cache_said = (f"    # The cache is {REFERENCE_PATCHER}'s (config.layer_types names the Mamba and attention layers).\n"
                  if not (family and hybrid) else
                  f"    # The cache holds a pair per mixer and per attention ({layer_cache_function(family)}).\n")
    layer_cache = "" if not (family and hybrid) else (
        f"        # each decoder layer holds a mixer and an attention: a cache pair for each module, keyed by its layer_idx\n"
        f"        mixer_layers = [m.layer_idx for m in model.modules() if type(m).__name__ in self.MIXER_CLASSES]\n"
        f"        attention_layers = [m.layer_idx for m in model.modules() if hasattr(m, \"k_proj\") and hasattr(m, \"head_dim\")]\n"
        f"        self.patched_forward = self.orig_forward = {layer_cache_function(family)}(self, mixer_layers, attention_layers)\n")
    rename = "" if not family else (
        f"            if cache_name is not None and \"past_key_values\" in kwargs:\n"
        f"                kwargs[cache_name] = kwargs.pop(\"past_key_values\")\n")
    enter = "" if not family else (
        f"        # the cache wrapper the family's forward builds reads the layer kinds from it too\n"
        f"        self._ov_own_config = self.real_config._config\n"
        f"        self.real_config._config = {fn}(self._ov_own_config)\n")
    leave = "" if not family else "        self.real_config._config = self._ov_own_config\n"
    return (
        f"class {name}({REFERENCE_PATCHER}):\n"
        f"    # {listed} has {form.mixer}'s forward: {helper},\n"
        f"    # the recurrent form optimum-intel converts to an OpenVINO loop, replaces it on every such module.\n"
        f"{cache_said}"
        f"    MIXER_CLASSES = {table}\n"
        f"\n"
        f"{init}"
        f"        self._ov_model_forward = model_forward = self.model_orig_forward\n"
        f"        takes_positions = \"position_ids\" in inspect.signature(model_forward).parameters\n"
        f"{cache_name}"
        f"\n"
        f"        def forward_with_positions(input_ids=None, attention_mask=None, **kwargs):\n"
        f"            # the family's forward passes no position ids: without them the model counts positions\n"
        f"            # from 0 on every call, also when decoding from the cache; count them as generate() does\n"
        f"            if takes_positions and attention_mask is not None and kwargs.get(\"position_ids\") is None:\n"
        f"                positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)\n"
        f"                kwargs[\"position_ids\"] = positions[:, -input_ids.shape[1] :]\n"
        f"{rename}"
        f"            return model_forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)\n"
        f"\n"
        f"        self.model_orig_forward = forward_with_positions\n"
        f"{layer_cache}"
        f"\n"
        f"    def __enter__(self):\n"
        f"        OVDecoderModelPatcher.__enter__(self)\n"
        f"        setattr(self._model, self.orig_forward_name, self.patched_forward)\n"
        f"{enter}"
        f"{enter_source() if experts else ''}"
        f"\n"
        f"        def recurrent_forward(mixer):\n"
        f"            def forward(hidden_states, cache_params=None, attention_mask=None, **kwargs):\n"
        f"                conv_state = recurrent_state = raw_attention_mask = None\n"
        f"                if cache_params is not None:\n"
        f"                    idx = cache_params.mamba_mapping[mixer.layer_idx]\n"
        f"                    conv_state = cache_params.conv_states[idx]\n"
        f"                    recurrent_state = cache_params.recurrent_states[idx]\n"
        f"                    raw_attention_mask = cache_params.raw_attention_mask\n"
        f"                out, conv_state, recurrent_state = {helper}(\n"
        f"                    mixer, hidden_states, cache_params, conv_state, recurrent_state, raw_attention_mask\n"
        f"                )\n"
        f"                if cache_params is not None:\n"
        f"                    cache_params.conv_states[idx] = conv_state\n"
        f"                    cache_params.recurrent_states[idx] = recurrent_state\n"
        f"                return out\n"
        f"\n"
        f"            return forward\n"
        f"\n"
        f"        for module in self._model.modules():\n"
        f"            if type(module).__name__ in self.MIXER_CLASSES:\n"
        f"                module.{SAVED} = module.forward\n"
        f"                module.selective_ssm_recurrent_cell = {CELL}()\n"
        f"                module.forward = recurrent_forward(module)\n"
        f"\n"
        f"    def __exit__(self, exc_type, exc_value, traceback):\n"
        f"        OVDecoderModelPatcher.__exit__(self, exc_type, exc_value, traceback)\n"
        f"        setattr(self._model, self.orig_forward_name, self._ov_model_forward)\n"
        f"{leave}"
        f"{exit_source() if experts else ''}"
        f"        for module in self._model.modules():\n"
        f'            if hasattr(module, "{SAVED}"):\n'
        f"                module.forward = module.{SAVED}\n"
        f"                del module.{SAVED}, module.selective_ssm_recurrent_cell\n"
    )
