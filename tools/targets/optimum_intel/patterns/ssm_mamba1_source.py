"""Source the hybrid Mamba-1 cache pattern writes into model_patcher.py.

transformers 5.5 dropped MambaCache for the unified cache, and optimum-intel's Mamba-1 export
(`MambaPatcher`, `mamba_mixer_forward`) still builds the former and reads the `cache_position` the mixers
no longer receive, which is why its config caps transformers at 5.3. GraniteMoeHybrid's export is the one
hybrid SSM export validated on 5.5: a flat conv/recurrent state pair per Mamba layer plus key/value
tensors, carried by `GraniteMoeHybridModelPatcher`, and a selective scan `SelectiveSSMRecurrentCell` that
OpenVINO converts to a loop (so the trace does not freeze the sequence length as the Mamba-1 slow path's
Python loop would). Mamba-1's scan is that cell's with one head per (channel, state) pair:
    state[d, n] <- exp(A[d, n] * dt[d]) * state[d, n] + dt[d] * B[n] * x[d];   y[d] = sum_n state[d, n] * C[n]
is the Mamba-2 recurrence with H = D * N heads of head size 1, scalar decay A[d, n] per head, and B, C given
per head (as many groups as heads, state size 1). The family's dummy generator then builds Mamba-1's states
from a copy of the config with `mamba_n_groups` 0 (conv state: the D mixer channels), `mamba_n_heads` D and
`mamba_d_head` 1 (recurrent state: (batch, D, 1, N), the mixer's (batch, D, N) with a unit axis).
"""

from __future__ import annotations

HELPER = "mamba1_recurrent_mixer_forward"
CELL = "SelectiveSSMRecurrentCell"
REFERENCE_PATCHER = "GraniteMoeHybridModelPatcher"
SAVED = "_ov_ssm_orig_forward"


def helper_source() -> str:
    """The recurrent form of a Mamba-1 mixer whose slow path has inner dt/B/C RMS norms (the reference's)."""
    return f'''def {HELPER}(self, hidden_states, conv_state, recurrent_state, attention_mask=None):
    # Mamba-1 selective scan (the mixer's slow_forward) in the recurrent form optimum-intel converts to an
    # OpenVINO loop: {CELL} with one head per (channel, state) pair, so that the decay
    # exp(A[d, n] * dt[d]) is a per-head scalar as in Mamba-2. One code path for prefill and decoding.
    batch_size, seq_len, _ = hidden_states.shape
    dtype = hidden_states.dtype
    projected_states = self.in_proj(hidden_states).transpose(1, 2)
    hidden_states, gate = projected_states.chunk(2, dim=1)
    mask = None
    if attention_mask is not None:
        # the raw 2-d mask: padded positions are zeroed before and after the convolution, as the model does
        mask = attention_mask[:, -seq_len:].unsqueeze(1).to(hidden_states.dtype)
        hidden_states = hidden_states * mask

    hidden_states, new_conv_state = ov_causal_conv1d(conv_state, hidden_states, self.conv1d.weight, self.conv1d.bias)
    hidden_states = self.act(hidden_states).to(dtype)
    if mask is not None:
        hidden_states = hidden_states * mask

    ssm_parameters = self.x_proj(hidden_states.transpose(1, 2))
    time_step, B, C = torch.split(
        ssm_parameters, [self.time_step_rank, self.ssm_state_size, self.ssm_state_size], dim=-1
    )
    time_step = self.dt_layernorm(time_step)
    B = self.b_layernorm(B)
    C = self.c_layernorm(C)
    discrete_time_step = torch.nn.functional.softplus(self.dt_proj(time_step)).float()  # (batch, seq, D)

    A = -torch.exp(self.A_log.float())  # (D, N)
    channels, states = A.shape
    heads = channels * states  # head d * N + n carries state[d, n]
    dt = discrete_time_step.repeat_interleave(states, dim=-1)  # (batch, seq, heads)
    x = hidden_states.transpose(1, 2).float().repeat_interleave(states, dim=-1).unsqueeze(-1)  # (batch, seq, heads, 1)
    B = B.float()[:, :, None, :].expand(batch_size, seq_len, channels, states).reshape(batch_size, seq_len, heads, 1)
    C = C.float()[:, :, None, :].expand(batch_size, seq_len, channels, states).reshape(batch_size, seq_len, heads, 1)
    state = recurrent_state.float().reshape(batch_size, heads, 1, 1)

    output_cell = self.selective_ssm_recurrent_cell(A.reshape(heads), dt, B, x, C, state)
    num_elems = batch_size * seq_len * heads
    y = output_cell[:num_elems].reshape(batch_size, seq_len, channels, states).sum(dim=-1)  # (batch, seq, D)
    new_recurrent_state = output_cell[num_elems:].reshape(recurrent_state.shape).to(recurrent_state.dtype)

    scan_output = y.transpose(1, 2).to(dtype) + hidden_states * self.D[None, :, None]
    scan_output = scan_output * self.act(gate)
    contextualized_states = self.out_proj(scan_output.transpose(1, 2))
    return contextualized_states, new_conv_state, new_recurrent_state
'''


def family_function(model_type: str) -> str:
    return f"{model_type}_mamba1_family_config"


def family_source(model_type: str, expand: str, d_state: str, d_conv: str) -> str:
    """A copy of the config under the names GraniteMoeHybrid's generator and patcher read, laid out for
    Mamba-1 states (module doc), with `layer_types`/`layers_block_type` naming "mamba" and "attention"."""
    fn = family_function(model_type)
    return f'''def {fn}(config):
    # {model_type}'s Mamba-1 states in GraniteMoeHybrid's cache layout: no B/C groups in the conv state
    # (mamba_n_groups 0), one recurrent head per mixer channel of size 1 (mamba_n_heads D, mamba_d_head 1).
    # The layer kinds are copied as class attributes: the model's config may compute them in properties.
    if getattr(config, "_ov_family_config", False):
        return config
    import copy

    kinds = list(config.layers_block_type)
    family = copy.copy(config)
    family.__class__ = type(type(config).__name__, (type(config),), {{"layer_types": kinds, "layers_block_type": kinds}})
    family.mamba_expand = config.{expand}
    family.mamba_d_state = config.{d_state}
    family.mamba_d_conv = config.{d_conv}
    family.mamba_n_groups = 0
    family.mamba_n_heads = int(config.{expand} * config.hidden_size)
    family.mamba_d_head = 1
    family._ov_family_config = True
    return family
'''


def normalized_name(patcher: str) -> str:
    return patcher.removesuffix("ModelPatcher").removesuffix("Patcher") + "Mamba1NormalizedConfig"


def normalized_source(patcher: str, model_type: str) -> str:
    return (
        f"class {normalized_name(patcher)}:\n"
        f"    # the family's dummy generator and cache inputs read the normalized config's model config\n"
        f"    def __new__(cls, config, **kwargs):\n"
        f"        from optimum.utils.normalized_config import NormalizedTextConfig\n"
        f"\n"
        f"        return NormalizedTextConfig({family_function(model_type)}(config), **kwargs)\n")


def patcher_source(name: str, mixers: tuple[str, ...], model_type: str, experts: bool) -> str:
    """The patcher: GraniteMoeHybrid's cache over the family config copy, the recurrent form on every module
    of the mixer classes, and (`experts`) the model's experts through register_ov_batched_mm."""
    listed = ", ".join(mixers)
    table = "(" + ", ".join(f'"{m}"' for m in mixers) + ("," if len(mixers) == 1 else "") + ")"
    fn = family_function(model_type)
    moe = ("        # the experts' default path does not convert to OpenVINO; the batched-matmul one does\n"
           "        register_ov_batched_mm(self)\n") if experts else ""
    return (
        f"class {name}({REFERENCE_PATCHER}):\n"
        f"    # {listed}: Mamba-1 mixers, replaced by {HELPER} (the recurrent form converted to an\n"
        f"    # OpenVINO loop); the cache is {REFERENCE_PATCHER}'s, over a copy of the config laid out for Mamba-1.\n"
        f"    MIXER_CLASSES = {table}\n"
        f"\n"
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        own = config._config\n"
        f"        config._config = {fn}(own)\n"
        f"        try:\n"
        f"            super().__init__(config, model, model_kwargs)\n"
        f"        finally:\n"
        f"            config._config = own\n"
        f"        self._ov_model_forward = model_forward = self.model_orig_forward\n"
        f"        takes_positions = \"position_ids\" in inspect.signature(model_forward).parameters\n"
        f"\n"
        f"        def forward_with_positions(input_ids=None, attention_mask=None, **kwargs):\n"
        f"            # the family's forward passes no position ids: without them the model counts positions\n"
        f"            # from 0 on every call, also when decoding from the cache; count them as generate() does\n"
        f"            if takes_positions and attention_mask is not None and kwargs.get(\"position_ids\") is None:\n"
        f"                positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)\n"
        f"                kwargs[\"position_ids\"] = positions[:, -input_ids.shape[1] :]\n"
        f"            return model_forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)\n"
        f"\n"
        f"        self.model_orig_forward = forward_with_positions\n"
        f"\n"
        f"    def __enter__(self):\n"
        f"        OVDecoderModelPatcher.__enter__(self)\n"
        f"        setattr(self._model, self.orig_forward_name, self.patched_forward)\n"
        f"        # the cache wrapper the family's forward builds reads the layer kinds from the config copy\n"
        f"        self._ov_own_config = self.real_config._config\n"
        f"        self.real_config._config = {fn}(self._ov_own_config)\n"
        f"{moe}"
        f"\n"
        f"        def recurrent_forward(mixer):\n"
        f"            def forward(hidden_states, cache_params=None, attention_mask=None, **kwargs):\n"
        f"                batch_size = hidden_states.shape[0]\n"
        f"                conv_state = torch.zeros(batch_size, mixer.intermediate_size, mixer.conv_kernel_size)\n"
        f"                recurrent_state = torch.zeros(batch_size, mixer.intermediate_size, 1, mixer.ssm_state_size)\n"
        f"                raw_attention_mask = None\n"
        f"                if cache_params is not None:\n"
        f"                    idx = cache_params.mamba_mapping[mixer.layer_idx]\n"
        f"                    conv_state = cache_params.conv_states[idx]\n"
        f"                    recurrent_state = cache_params.recurrent_states[idx]\n"
        f"                    raw_attention_mask = cache_params.raw_attention_mask\n"
        f"                out, conv_state, recurrent_state = {HELPER}(\n"
        f"                    mixer, hidden_states, conv_state, recurrent_state, raw_attention_mask\n"
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
        f"        self.real_config._config = self._ov_own_config\n"
        f"        for module in self._model.modules():\n"
        f'            if hasattr(module, "{SAVED}"):\n'
        f"                module.forward = module.{SAVED}\n"
        f"                del module.{SAVED}, module.selective_ssm_recurrent_cell\n"
    )
