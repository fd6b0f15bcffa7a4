"""The written forms of a Mamba-2 mixer the hybrid cache pattern knows, and the recurrent form of each.

transformers writes the cache-free Mamba-2 mixer two ways. GraniteMoeHybrid's (Mamba2's, Bamba's) zeroes
padding only for a batch of several rows, clamps dt to `time_step_limit` and scans with einsum-like
contractions; optimum-intel's `granite_moe_hybrid_mamba_mixer_forward` is its recurrent form. Zamba2's
(NemotronH's) zeroes padding whenever a mask is given, clamps dt below at `time_step_min` only and scans the
same chunked SSD with other permutes and sums. optimum-intel exports Zamba2 with a chunked forward of its own
cache; its recurrent form is not written upstream, so for a model of that form this pattern writes one
(`recurrent_source`): GraniteMoeHybrid's recurrent form with Zamba2's masking and dt clamp, the SSM itself
computed by the same `SelectiveSSMRecurrentCell`. That the chunked scan and the recurrence compute the same
thing is what the verification's parity, long-sequence and cached-decode checks measure on the real model.

A mixer is of a form when its torch_forward computes without a cache what the reference mixer's does, up to
local names (patterns/ssm_family.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.targets.optimum_intel.patterns.edit import function_name


@dataclass(frozen=True)
class MixerForm:
    name: str
    model_type: str  # the transformers model whose mixer is the reference of this form
    mixer: str
    helper: str | None  # model_patcher.py's recurrent form of it, None: written by this pattern


GRANITE = MixerForm("granitemoehybrid", "granitemoehybrid", "GraniteMoeHybridMambaLayer",
                    "granite_moe_hybrid_mamba_mixer_forward")
ZAMBA2 = MixerForm("zamba2", "zamba2", "Zamba2MambaMixer", None)
FORMS = (GRANITE, ZAMBA2)


def helper_name(form: MixerForm, model_type: str) -> str:
    return form.helper or function_name(model_type, "mamba_mixer_forward")


def recurrent_source(fn: str, form: MixerForm) -> str:
    """The recurrent form of a mixer of `form` (model_patcher.py), for a form optimum-intel has none of."""
    assert form is ZAMBA2, form
    return (
        f"def {fn}(\n"
        f"    self,\n"
        f"    hidden_states: torch.Tensor,\n"
        f"    cache_params=None,\n"
        f"    conv_state: Optional[torch.Tensor] = None,\n"
        f"    recurrent_state: Optional[torch.Tensor] = None,\n"
        f"    attention_mask: Optional[torch.Tensor] = None,\n"
        f"):\n"
        f"    # {GRANITE.helper} for a mixer written as Zamba2's: padding is zeroed whenever a\n"
        f"    # mask is given (also for one row), dt is clamped below at time_step_min only (not to time_step_limit)\n"
        f"    batch_size, seq_len, _ = hidden_states.shape\n"
        f"\n"
        f"    def apply_mask_to_padding_states(states):\n"
        f"        if attention_mask is None:\n"
        f"            return states\n"
        f"        return (states * attention_mask[:, -seq_len:, None]).to(states.dtype)\n"
        f"\n"
        f"    # 1. Gated MLP's linear projection\n"
        f"    projected_states = self.in_proj(apply_mask_to_padding_states(hidden_states))\n"
        f"    gate, hidden_states_B_C, dt = projected_states.split(\n"
        f"        [self.intermediate_size, self.conv_dim, self.num_heads], dim=-1\n"
        f"    )\n"
        f"\n"
        f"    # 2. Convolution sequence transformation with cached state\n"
        f"    hidden_states_B_C = hidden_states_B_C.transpose(1, 2)\n"
        f"    if conv_state is None:\n"
        f"        conv_state = torch.zeros(batch_size, self.conv_dim, self.conv_kernel_size, dtype=hidden_states_B_C.dtype)\n"
        f"    new_hidden_states_B_C, new_conv_state = ov_causal_conv1d(\n"
        f"        conv_state, hidden_states_B_C, self.conv1d.weight, self.conv1d.bias\n"
        f"    )\n"
        f"    hidden_states_B_C = apply_mask_to_padding_states(self.act(new_hidden_states_B_C).transpose(1, 2))\n"
        f"\n"
        f"    hidden_states_ssm, B, C = torch.split(\n"
        f"        hidden_states_B_C,\n"
        f"        [self.intermediate_size, self.n_groups * self.ssm_state_size, self.n_groups * self.ssm_state_size],\n"
        f"        dim=-1,\n"
        f"    )\n"
        f"\n"
        f"    # 3. State Space Model transformation in recurrent form\n"
        f"    A = -torch.exp(self.A_log.float())  # (num_heads,)\n"
        f"    dt = torch.nn.functional.softplus(dt + self.dt_bias)  # (B, T, num_heads)\n"
        f"    dt = torch.clamp(dt, self.time_step_min).float()\n"
        f"\n"
        f"    x = hidden_states_ssm.reshape(batch_size, seq_len, self.num_heads, self.head_dim).float()\n"
        f"    B = B.reshape(batch_size, seq_len, self.n_groups, self.ssm_state_size).float()\n"
        f"    C = C.reshape(batch_size, seq_len, self.n_groups, self.ssm_state_size).float()\n"
        f"\n"
        f"    if recurrent_state is None:\n"
        f"        recurrent_state = torch.zeros(\n"
        f"            batch_size, self.num_heads, self.head_dim, self.ssm_state_size, dtype=torch.float32\n"
        f"        )\n"
        f"    recurrent_state = recurrent_state.float()\n"
        f"\n"
        f"    # A (H,), dt (B,T,H), B (B,T,G,N), x (B,T,H,P), C (B,T,G,N), state (B,H,P,N)\n"
        f"    output_cell = self.selective_ssm_recurrent_cell(A, dt, B, x, C, recurrent_state)\n"
        f"\n"
        f"    num_elems = batch_size * seq_len * self.num_heads * self.head_dim\n"
        f"    y = output_cell[:num_elems].reshape(batch_size, seq_len, self.num_heads, self.head_dim)\n"
        f"    new_recurrent_state = output_cell[num_elems:].reshape(recurrent_state.shape)\n"
        f"\n"
        f"    # D skip connection (independent of the recurrent state)\n"
        f"    y = y + x * self.D.view(1, 1, -1, 1)\n"
        f"    y = y.reshape(batch_size, seq_len, -1)\n"
        f"    scan_output = self.norm(y, gate)\n"
        f"\n"
        f"    # 4. Final linear projection\n"
        f"    contextualized_states = self.out_proj(scan_output.to(hidden_states.dtype))\n"
        f"\n"
        f"    return contextualized_states, new_conv_state, new_recurrent_state\n"
    )
