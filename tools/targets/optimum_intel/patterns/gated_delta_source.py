"""Source the gated-delta hybrid pattern writes into model_patcher.py.

The export carries, per linear-attention layer, one conv state (the q, k and v short convolutions' states
stacked along the channels, as Qwen3-Next's single conv over the concatenated q/k/v keeps it) and one
recurrent state, then a key/value pair per attention layer: the cache layout Qwen3-Next's export config,
dummy generator and OpenVINO runtime class already name (`cache_params.past.conv/ssm/key/value`). The
patcher maps those flat tensors onto the decoder layers by `config.layer_types`, and replaces each mixer's
forward with its recurrent form: one depthwise causal conv over the stacked q/k/v (`ov_causal_conv1d`, the
form OpenVINO fuses) and optimum-intel's `RecurrentAttentionCell` loop for the gated delta rule.
"""

from __future__ import annotations

CELL = "RecurrentAttentionCell"
RULE = "patched_recurrent_gated_delta_rule"
CONV = "ov_causal_conv1d"
SAVED = "_ov_gated_delta_orig_forward"


def patcher_source(name: str, mixers: tuple[str, ...], linear: str, full: str, mixer_doc: str) -> str:
    """The patcher class; `linear`/`full` are the config.layer_types labels of the two layer kinds."""
    table = "(" + ", ".join(f'"{m}"' for m in mixers) + ("," if len(mixers) == 1 else "") + ")"
    return f'''class {name}(OVDecoderModelPatcher):
    # {mixer_doc}
    # Each mixer runs in its recurrent form: one causal conv over the stacked q/k/v short convolutions
    # ({CONV}) and the gated delta rule as {CELL} (an OpenVINO loop). The cache is Qwen3-Next's layout:
    # per "{linear}" layer a conv state (q, k, v stacked) and a recurrent state, per "{full}" layer keys
    # and values, mapped onto the decoder layers by config.layer_types.
    MIXER_CLASSES = {table}
    LINEAR, FULL = "{linear}", "{full}"

    def __init__(self, config, model, model_kwargs=None):
        from openvino.frontend.pytorch import ConversionExtension, ModuleExtension

        super().__init__(config, model, model_kwargs)
        layer_types = list(model.config.layer_types)
        linear_layers = [i for i, kind in enumerate(layer_types) if kind == self.LINEAR]
        full_layers = [i for i, kind in enumerate(layer_types) if kind == self.FULL]
        model_forward = self.orig_forward

        class LayerIndexedCache:
            # what the model's decoder layers read from their cache, indexed by absolute layer
            is_compileable = False

            def __init__(self, states, attention_mask):
                n = len(layer_types)
                self.layer_types = layer_types
                self.conv_states, self.recurrent_states = [None] * n, [None] * n
                self.key_cache, self.value_cache = [None] * n, [None] * n
                self.raw_attention_mask = attention_mask
                for j, i in enumerate(linear_layers):
                    self.conv_states[i], self.recurrent_states[i] = states[2 * j], states[2 * j + 1]
                offset = 2 * len(linear_layers)
                for j, i in enumerate(full_layers):
                    self.key_cache[i], self.value_cache[i] = states[offset + 2 * j], states[offset + 2 * j + 1]

            def __len__(self):
                return len(self.layer_types)

            def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
                self.key_cache[layer_idx] = torch.cat([self.key_cache[layer_idx], key_states], dim=2)
                self.value_cache[layer_idx] = torch.cat([self.value_cache[layer_idx], value_states], dim=2)
                return self.key_cache[layer_idx], self.value_cache[layer_idx]

            def get_seq_length(self, layer_idx=0):
                return self.key_cache[full_layers[0]].shape[-2]

            def get_mask_sizes(self, query_length, layer_idx):
                return query_length + self.get_seq_length(), 0

            def has_previous_state(self):
                # the states are always inputs of the export; the mixers read the padding mask themselves
                return True

            def flat(self):
                states = []
                for i in linear_layers:
                    states += [self.conv_states[i], self.recurrent_states[i]]
                for i in full_layers:
                    states += [self.key_cache[i], self.value_cache[i]]
                return states

        def patched_forward(input_ids, attention_mask=None, cache_params=None):
            cache = None if cache_params is None else LayerIndexedCache(cache_params, attention_mask)
            kwargs = {{}}
            if attention_mask is not None:
                # positions as generate() counts them (left padding included), also when decoding from the cache
                positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
                kwargs["position_ids"] = positions[:, -input_ids.shape[1] :]
            out = model_forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=cache is not None,
                **kwargs,
            )
            outputs = {{"logits": out.logits}}
            if cache is not None:
                outputs["present_key_values"] = cache.flat()
            return outputs

        self.patched_forward = patched_forward
        self.model_orig_forward = self.orig_forward
        self.orig_forward = patched_forward
        self.module_extensions = {{{CELL}: ModuleExtension({CELL}, "RecurrentAttentionCellOp")}}
        self.conversion_extensions = [
            ConversionExtension("RecurrentAttentionCellOp", convert_recurrent_attention_cell),
        ]

    def __enter__(self):
        super().__enter__()
        setattr(self._model, self.orig_forward_name, self.patched_forward)

        def recurrent_forward(mixer):
            convs = (mixer.q_conv1d, mixer.k_conv1d, mixer.v_conv1d)
            weight = torch.cat([c.weight for c in convs], dim=0)
            bias = None if convs[0].bias is None else torch.cat([c.bias for c in convs], dim=0)
            widths = [c.weight.shape[0] for c in convs]

            def forward(hidden_states, cache_params=None, attention_mask=None, **kwargs):
                batch_size, seq_len, _ = hidden_states.shape
                mask = attention_mask if cache_params is None else cache_params.raw_attention_mask
                if mask is not None:
                    # padding tokens contribute nothing to the states (zeroed before the projections)
                    hidden_states = hidden_states * mask[:, -seq_len:, None].to(hidden_states.dtype)
                mixed = torch.cat([mixer.q_proj(hidden_states), mixer.k_proj(hidden_states),
                                   mixer.v_proj(hidden_states)], dim=-1).transpose(1, 2)
                if cache_params is not None:
                    conv_state = cache_params.conv_states[mixer.layer_idx]
                    recurrent_state = cache_params.recurrent_states[mixer.layer_idx]
                else:
                    conv_state = mixed.new_zeros(batch_size, mixed.shape[1], weight.shape[-1] - 1)
                    recurrent_state = None
                mixed, conv_state = {CONV}(conv_state, mixed, weight, bias)
                q, k, v = torch.split(mixed.transpose(1, 2), widths, dim=-1)
                q, k, v = (c.act_fn(x) for c, x in zip(convs, (q, k, v)))
                q = q.reshape(batch_size, seq_len, -1, mixer.head_k_dim)
                k = k.reshape(batch_size, seq_len, -1, mixer.head_k_dim)
                v = v.reshape(batch_size, seq_len, -1, mixer.head_v_dim)
                if mixer.num_v_heads > mixer.num_k_heads:
                    q = q.repeat_interleave(mixer.num_v_heads // mixer.num_k_heads, dim=2)
                    k = k.repeat_interleave(mixer.num_v_heads // mixer.num_k_heads, dim=2)
                beta = mixer.b_proj(hidden_states).sigmoid()
                if mixer.allow_neg_eigval:
                    beta = beta * 2.0
                g = -mixer.A_log.float().exp() * F.softplus(mixer.a_proj(hidden_states).float() + mixer.dt_bias)
                output, recurrent_state = {RULE}(
                    mixer, q, k, v, g=g, beta=beta, initial_state=recurrent_state,
                    output_final_state=True, use_qk_l2norm_in_kernel=True,
                )
                if cache_params is not None:
                    cache_params.conv_states[mixer.layer_idx] = conv_state
                    cache_params.recurrent_states[mixer.layer_idx] = recurrent_state
                gate = mixer.g_proj(hidden_states)
                output = mixer.o_norm(output.reshape(-1, mixer.head_v_dim), gate.reshape(-1, mixer.head_v_dim))
                return mixer.o_proj(output.reshape(batch_size, seq_len, -1))

            return forward

        for module in self._model.modules():
            if type(module).__name__ in self.MIXER_CLASSES:
                module.{SAVED} = module.forward
                module.recurrent_attention_cell = {CELL}()
                module.forward = recurrent_forward(module)

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        setattr(self._model, self.orig_forward_name, self.model_orig_forward)
        for module in self._model.modules():
            if hasattr(module, "{SAVED}"):
                module.forward = module.{SAVED}
                del module.{SAVED}, module.recurrent_attention_cell
'''
