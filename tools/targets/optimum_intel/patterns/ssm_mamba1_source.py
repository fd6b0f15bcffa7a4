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


HEADED_HELPER = "mamba1_heads_recurrent_mixer_forward"


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


def headed_helper_source() -> str:
    """The recurrent form of a multi-head Mamba-1 mixer (the second reference's slow path): interleaved
    state/gate projection, per-head x_proj/dt_proj weights, state (batch, heads, head size, N)."""
    return f'''def {HEADED_HELPER}(self, hidden_states, conv_state, recurrent_state, attention_mask=None):
    # Multi-head Mamba-1 selective scan (the mixer's slow_forward) in the recurrent form optimum-intel converts
    # to an OpenVINO loop: {CELL} with one head per (mamba head, channel, state), so that the decay
    # exp(A[h, d, n] * dt[h, d]) is a per-head scalar as in Mamba-2. One code path for prefill and decoding.
    batch_size, seq_len, _ = hidden_states.shape
    dtype = hidden_states.dtype
    projected_states = self.in_proj(hidden_states).transpose(1, 2)
    hidden_states, gate = projected_states.view(batch_size, -1, 2, seq_len).chunk(2, dim=2)
    hidden_states = hidden_states.squeeze(2)
    gate = gate.squeeze(2)
    mask = None
    if attention_mask is not None:
        # the raw 2-d mask: padded positions are zeroed before and after the convolution, as the model does
        mask = attention_mask[:, -seq_len:].unsqueeze(1).to(hidden_states.dtype)
        hidden_states = hidden_states * mask

    hidden_states, new_conv_state = ov_causal_conv1d(conv_state, hidden_states, self.conv1d.weight, self.conv1d.bias)
    hidden_states = self.act(hidden_states).to(dtype)
    if mask is not None:
        hidden_states = hidden_states * mask

    mamba_heads, head_dim = self.n_mamba_heads, self.mamba_head_dim
    x = hidden_states.reshape(batch_size, mamba_heads, head_dim, seq_len)
    ssm_parameters = (self.x_proj_weight[None] @ x).transpose(-1, -2)  # (batch, mamba heads, seq, R + 2N)
    time_step, B, C = torch.split(
        ssm_parameters, [self.time_step_rank, self.ssm_state_size, self.ssm_state_size], dim=-1
    )
    discrete_time_step = (self.dt_proj_weight[None] @ time_step.transpose(-1, -2)) + self.dt_proj_bias[None, :, :, None]
    discrete_time_step = torch.nn.functional.softplus(discrete_time_step).float()  # (batch, mamba heads, head_dim, seq)

    A = -torch.exp(self.A_log.float())  # (mamba heads, head_dim, N)
    states = A.shape[-1]
    heads = mamba_heads * head_dim * states
    dt = discrete_time_step.permute(0, 3, 1, 2).reshape(batch_size, seq_len, -1).repeat_interleave(states, dim=-1)
    u = x.permute(0, 3, 1, 2).reshape(batch_size, seq_len, -1).float().repeat_interleave(states, dim=-1).unsqueeze(-1)
    B = B.float().permute(0, 2, 1, 3)[:, :, :, None, :].expand(batch_size, seq_len, mamba_heads, head_dim, states)
    C = C.float().permute(0, 2, 1, 3)[:, :, :, None, :].expand(batch_size, seq_len, mamba_heads, head_dim, states)
    B = B.reshape(batch_size, seq_len, heads, 1)
    C = C.reshape(batch_size, seq_len, heads, 1)
    state = recurrent_state.float().reshape(batch_size, heads, 1, 1)

    output_cell = self.selective_ssm_recurrent_cell(A.reshape(heads), dt, B, u, C, state)
    num_elems = batch_size * seq_len * heads
    y = output_cell[:num_elems].reshape(batch_size, seq_len, mamba_heads, head_dim, states).sum(dim=-1)
    new_recurrent_state = output_cell[num_elems:].reshape(recurrent_state.shape).to(recurrent_state.dtype)

    scan_output = y.permute(0, 2, 3, 1).to(dtype) + x * self.D[None, :, :, None]
    scan_output = scan_output * self.act(gate.reshape(batch_size, mamba_heads, head_dim, seq_len))
    contextualized_states = self.out_proj(scan_output.reshape(batch_size, -1, seq_len).transpose(1, 2))
    return contextualized_states, new_conv_state, new_recurrent_state
'''


def family_function(model_type: str) -> str:
    return f"{model_type}_mamba1_family_config"


def family_source(model_type: str, expand: str, d_state: str, d_conv: str, heads: str, head_dim: str,
                  mixer_labels: tuple[str, ...], attention_labels: tuple[str, ...]) -> str:
    """A copy of the config under the names GraniteMoeHybrid's generator and patcher read, laid out for
    Mamba-1 states (module doc). `heads`/`head_dim`: expressions of the recurrent state's two leading axes.
    The family's cache wrapper maps a layer to its key/value index through `layers_block_type` ("attention"
    for a layer with attention), its generator and export config count "mamba" and "attention" in
    `layer_types` (one per layer with a mixer, one per layer with attention): a layer may have both."""
    fn = family_function(model_type)
    return f'''def {fn}(config):
    # {model_type}'s Mamba-1 states in GraniteMoeHybrid's cache layout: no B/C groups in the conv state
    # (mamba_n_groups 0), the recurrent state's axes as mamba_n_heads and mamba_d_head. The layer kinds are
    # class attributes of the copy: the model's config may compute them in properties or alias them.
    if getattr(config, "_ov_family_config", False):
        return config
    import copy

    labels = list(config.layers_block_type)
    mixer_layers = [i for i, label in enumerate(labels) if label in {mixer_labels!r}]
    attention_layers = [i for i, label in enumerate(labels) if label in {attention_labels!r}]
    kinds = {{
        "layers_block_type": ["attention" if i in attention_layers else "mamba" for i in range(len(labels))],
        "layer_types": ["mamba"] * len(mixer_layers) + ["attention"] * len(attention_layers),
        "attribute_map": {{
            k: v for k, v in type(config).attribute_map.items() if k not in ("layer_types", "layers_block_type")
        }},
    }}
    family = copy.copy(config)
    # class attributes shadow properties, instance ones the attributes the config sets on itself
    family.__class__ = type(type(config).__name__, (type(config),), {{"__module__": type(config).__module__, **kinds}})
    vars(family).update({{k: v for k, v in kinds.items() if k != "attribute_map"}})
    family.mamba_expand = config.{expand}
    family.mamba_d_state = config.{d_state}
    family.mamba_d_conv = config.{d_conv}
    family.mamba_n_groups = 0
    family.mamba_n_heads = {heads}
    family.mamba_d_head = {head_dim}
    family._ov_mixer_index = {{layer: k for k, layer in enumerate(mixer_layers)}}
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


def patcher_source(name: str, mixers: tuple[str, ...], model_type: str, experts: bool, helper: str = HELPER,
                   state_axes: str = "mixer.intermediate_size, 1") -> str:
    """The patcher: GraniteMoeHybrid's cache over the family config copy, the recurrent form on every module
    of the mixer classes, and (`experts`) the model's experts through register_ov_batched_mm."""
    listed = ", ".join(mixers)
    table = "(" + ", ".join(f'"{m}"' for m in mixers) + ("," if len(mixers) == 1 else "") + ")"
    fn = family_function(model_type)
    moe = ("        # the experts' default path does not convert to OpenVINO; the batched-matmul one does\n"
           "        register_ov_batched_mm(self)\n") if experts else ""
    return (
        f"class {name}({REFERENCE_PATCHER}):\n"
        f"    # {listed}: Mamba-1 mixers, replaced by {helper} (the recurrent form converted to an\n"
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
        f"                recurrent_state = torch.zeros(batch_size, {state_axes}, mixer.ssm_state_size)\n"
        f"                raw_attention_mask = None\n"
        f"                if cache_params is not None:\n"
        f"                    idx = cache_params.config._ov_mixer_index[mixer.layer_idx]\n"
        f"                    conv_state = cache_params.conv_states[idx]\n"
        f"                    recurrent_state = cache_params.recurrent_states[idx]\n"
        f"                    raw_attention_mask = cache_params.raw_attention_mask\n"
        f"                out, conv_state, recurrent_state = {helper}(\n"
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
