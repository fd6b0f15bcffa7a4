"""Source the lightning hybrid cache pattern writes into optimum-intel (model_patcher.py, input_generators.py and
the export config's method).

The lightning attention forward (patterns/lightning_reference.py) computes, for the T tokens of a call and the
state S_past a previous call left (zero without one),
    o_t = sum_{s<=t} exp(-slope * (t - s)) (q_t . k_s) v_s + exp(-slope * (t + 1)) q_t @ S_past
    S   = exp(-slope * T) S_past + sum_s exp(-slope * (T - 1 - s)) k_s^T v_s
block by block in a Python loop over ceil(T / block_size) blocks (over T tokens with a cache): a trace keeps
the example's number of iterations. The rewrite writes the same sums over all T tokens at once (a T x T decay
matrix), so one graph serves every length, with or without a state. The cache is the flat list the export
carries: the state of each lightning layer, then the key and value of each attention layer, in layer order;
states go under the state-space names (`cache_params.*.ssm.<i>`) the stateful export and
OVModelWithMambaForCausalLM carry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    model_type: str
    forward: str  # the rewritten lightning forward (model_patcher.py)
    wrap: str  # the cache wrapper class (model_patcher.py)
    patcher: str
    generator: str  # input_generators.py
    label: str  # config.layer_types' name for the lightning layers
    lightning: tuple[str, ...]  # the modeling classes whose forward is rewritten
    experts: bool  # whether the patcher routes fused experts through register_ov_batched_mm


def forward_source(n: Names) -> str:
    return (
        f"def {n.forward}(\n"
        f"    self, hidden_states, position_embeddings=None, attention_mask=None, past_key_values=None, **kwargs\n"
        f"):\n"
        f"    # {', '.join(n.lightning)}'s forward walks the prompt block by block in a Python loop (and a cached\n"
        f"    # call token by token), which a trace freezes at the example's length. Both compute, for the T new\n"
        f"    # tokens and the state S_past of earlier calls,\n"
        f"    #   o_t = sum_(s<=t) exp(-slope (t - s)) (q_t . k_s) v_s + exp(-slope (t + 1)) q_t @ S_past\n"
        f"    #   S = exp(-slope T) S_past + sum_s exp(-slope (T - 1 - s)) k_s^T v_s\n"
        f"    # written here over all T tokens at once, for any T, with or without S_past.\n"
        f"    batch_size, seq_len, _ = hidden_states.shape\n"
        f"    qkv_states = self.act_fn(self.qkv_proj(hidden_states))\n"
        f"    qkv_states = qkv_states.reshape(batch_size, seq_len, self.num_attention_heads, 3 * self.head_dim)\n"
        f"    query_states, key_states, value_states = torch.split(qkv_states, self.head_dim, dim=3)\n"
        f"    query_states = query_states.transpose(1, 2)\n"
        f"    key_states = key_states.transpose(1, 2)\n"
        f"    value_states = value_states.transpose(1, 2)\n"
        f"\n"
        f"    state = None if past_key_values is None else past_key_values.get_linear_cache(self.layer_idx)\n"
        f"    if state is None:\n"
        f"        state = torch.zeros(\n"
        f"            batch_size,\n"
        f"            self.num_attention_heads,\n"
        f"            self.head_dim,\n"
        f"            self.head_dim,\n"
        f"            dtype=value_states.dtype,\n"
        f"            device=value_states.device,\n"
        f"        )\n"
        f"    if attention_mask is not None:\n"
        f"        # the 2D padding mask spans past and new tokens: padded tokens add nothing to the state\n"
        f"        new_tokens_mask = attention_mask[:, -seq_len:].to(torch.bool)\n"
        f"        value_states = value_states.masked_fill(~new_tokens_mask[:, None, :, None], 0)\n"
        f"\n"
        f"    slope = self.slope_rate.to(torch.float32)  # (num_heads, 1, 1)\n"
        f"    # positions 0..T-1 from the input itself, so the length stays dynamic in the trace\n"
        f"    positions = torch.cumsum(torch.ones_like(hidden_states[0, :, 0], dtype=torch.float32), dim=0) - 1\n"
        f"    distance = positions[:, None] - positions[None, :]\n"
        f"    decay = torch.exp(-slope * distance.clamp(min=0)) * (distance >= 0)  # (num_heads, T, T)\n"
        f"    query_decay = torch.exp(-slope * (positions[:, None] + 1))\n"
        f"    key_decay = torch.exp(-slope * (positions[-1] - positions)[:, None])\n"
        f"    state_decay = torch.exp(-slope * (positions[-1] + 1))\n"
        f"\n"
        f"    dtype = value_states.dtype\n"
        f"    attn_weights = torch.matmul(query_states, key_states.transpose(-1, -2))\n"
        f"    attn_output = torch.matmul(attn_weights * decay.to(dtype), value_states)\n"
        f"    attn_output = attn_output + torch.matmul(query_states * query_decay.to(dtype), state)\n"
        f"    state = state * state_decay.to(dtype) + torch.matmul(\n"
        f"        (key_states * key_decay.to(dtype)).transpose(-1, -2), value_states\n"
        f"    )\n"
        f"\n"
        f"    attn_output = attn_output.transpose(1, 2)\n"
        f"    attn_output = attn_output.reshape(batch_size, seq_len, self.num_attention_heads * self.head_dim)\n"
        f"    attn_output = self.norm(attn_output)\n"
        f"    attn_output = torch.sigmoid(self.output_gate(hidden_states)) * attn_output\n"
        f"    attn_output = self.out_proj(attn_output)\n"
        f"    if past_key_values is not None:\n"
        f"        past_key_values.set_linear_cache(self.layer_idx, state)\n"
        f"    return attn_output, state\n")


def wrap_source(n: Names) -> str:
    return (
        f"class {n.wrap}:\n"
        f"    # the exported flat cache as {n.model_type}'s layers read and write it: a key/value pair for each\n"
        f"    # attention layer, a (num_heads, head_dim, head_dim) state for each lightning attention layer\n"
        f"    is_compileable = False\n"
        f"\n"
        f"    def __init__(self, linear_layers, attention_layers, states, key_cache, value_cache):\n"
        f"        self.linear_index = {{layer: i for i, layer in enumerate(linear_layers)}}\n"
        f"        self.attention_index = {{layer: i for i, layer in enumerate(attention_layers)}}\n"
        f"        self.states = states\n"
        f"        self.key_cache = key_cache\n"
        f"        self.value_cache = value_cache\n"
        f"\n"
        f"    def get_linear_cache(self, layer_idx):\n"
        f"        return self.states[self.linear_index[layer_idx]]\n"
        f"\n"
        f"    def set_linear_cache(self, layer_idx, state):\n"
        f"        self.states[self.linear_index[layer_idx]] = state\n"
        f"\n"
        f"    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):\n"
        f"        i = self.attention_index[layer_idx]\n"
        f"        self.key_cache[i] = torch.cat([self.key_cache[i], key_states], dim=-2)\n"
        f"        self.value_cache[i] = torch.cat([self.value_cache[i], value_states], dim=-2)\n"
        f"        return self.key_cache[i], self.value_cache[i]\n"
        f"\n"
        f"    def get_seq_length(self, layer_idx=0):\n"
        f"        return self.key_cache[0].shape[-2] if self.key_cache else 0\n"
        f"\n"
        f"    def get_mask_sizes(self, query_length, layer_idx=0):\n"
        f"        # transformers >= 5 passes the query length, older versions a 1-d cache_position\n"
        f"        if hasattr(query_length, \"shape\") and len(query_length.shape) > 0:\n"
        f"            query_length = query_length.shape[0]\n"
        f"        return self.get_seq_length() + query_length, 0\n"
        f"\n"
        f"    @property\n"
        f"    def is_sliding(self):\n"
        f"        return [False]\n")


def patcher_source(n: Names) -> str:
    table = "(" + ", ".join(f'"{c}"' for c in n.lightning) + ("," if len(n.lightning) == 1 else "") + ")"
    experts = "        register_ov_batched_mm(self)\n" if n.experts else ""
    return (
        f"class {n.patcher}(OVDecoderModelPatcher):\n"
        f"    # {n.model_type} mixes softmax attention layers (key/value cache) with lightning attention layers (a\n"
        f"    # state each), as config.layer_types names them (\"{n.label}\": lightning); the exported cache is\n"
        f"    # [state of each lightning layer..., key, value of each attention layer...]\n"
        f"    def __init__(self, config, model, model_kwargs=None):\n"
        f"        super().__init__(config, model, model_kwargs)\n"
        f"        # the model's own forward, given back on exit (ModelPatcher gives back orig_forward, replaced below)\n"
        f"        self._model_own_forward = getattr(self._model, self.orig_forward_name)\n"
        f"        layer_types = list(self.real_config._config.layer_types)\n"
        f"        linear_layers = [i for i, kind in enumerate(layer_types) if kind == \"{n.label}\"]\n"
        f"        attention_layers = [i for i, kind in enumerate(layer_types) if kind != \"{n.label}\"]\n"
        f"\n"
        f"        def patched_forward(input_ids, attention_mask=None, cache_params=None):\n"
        f"            cache = None\n"
        f"            if cache_params is not None:\n"
        f"                n = len(linear_layers)\n"
        f"                cache = {n.wrap}(\n"
        f"                    linear_layers,\n"
        f"                    attention_layers,\n"
        f"                    list(cache_params[:n]),\n"
        f"                    list(cache_params[n::2]),\n"
        f"                    list(cache_params[n + 1 :: 2]),\n"
        f"                )\n"
        f"            # use_cache=False: asked to build a cache, the model's forward accepts only its own cache\n"
        f"            # class; given this one, its layers read and write it all the same\n"
        f"            outputs = self.model_orig_forward(\n"
        f"                input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=False\n"
        f"            )\n"
        f"            result = {{\"logits\": outputs.logits}}\n"
        f"            if cache is not None:\n"
        f"                present = list(cache.states)\n"
        f"                for key, value in zip(cache.key_cache, cache.value_cache):\n"
        f"                    present += [key, value]\n"
        f"                result[\"present_key_values\"] = present\n"
        f"            return result\n"
        f"\n"
        f"        self.model_orig_forward = self.orig_forward\n"
        f"        self.patched_forward = patched_forward\n"
        f"        self.orig_forward = patched_forward\n"
        f"\n"
        f"    def __enter__(self):\n"
        f"        super().__enter__()\n"
        f"{experts}"
        f"        for module in self._model.modules():\n"
        f"            if type(module).__name__ in {table}:\n"
        f"                module._ov_lightning_orig_forward = module.forward\n"
        f"                module.forward = types.MethodType({n.forward}, module)\n"
        f"\n"
        f"    def __exit__(self, exc_type, exc_value, traceback):\n"
        f"        super().__exit__(exc_type, exc_value, traceback)\n"
        f"        setattr(self._model, self.orig_forward_name, self._model_own_forward)\n"
        f"        for module in self._model.modules():\n"
        f"            if hasattr(module, \"_ov_lightning_orig_forward\"):\n"
        f"                module.forward = module._ov_lightning_orig_forward\n"
        f"                del module._ov_lightning_orig_forward\n")


def generator_source(n: Names) -> str:
    return (
        f"class {n.generator}(DummyPastKeyValuesGenerator):\n"
        f"    \"\"\"\n"
        f"    Generates dummy cache_params inputs for {n.model_type}: a (num_heads, head_dim, head_dim) state for each\n"
        f"    lightning attention layer, then a key/value pair for each softmax attention layer.\n"
        f"    \"\"\"\n"
        f"\n"
        f"    SUPPORTED_INPUT_NAMES = (\"cache_params\",)\n"
        f"\n"
        f"    def __init__(\n"
        f"        self,\n"
        f"        task: str,\n"
        f"        normalized_config,\n"
        f"        batch_size: int = DEFAULT_DUMMY_SHAPES[\"batch_size\"],\n"
        f"        sequence_length: int = DEFAULT_DUMMY_SHAPES[\"sequence_length\"],\n"
        f"        **kwargs,\n"
        f"    ):\n"
        f"        super().__init__(\n"
        f"            task=task,\n"
        f"            normalized_config=normalized_config,\n"
        f"            batch_size=batch_size,\n"
        f"            sequence_length=sequence_length,\n"
        f"            **kwargs,\n"
        f"        )\n"
        f"        config = normalized_config.config\n"
        f"        self.head_dim = getattr(config, \"head_dim\", None) or config.hidden_size // config.num_attention_heads\n"
        f"        self.num_linear_layers = config.layer_types.count(\"{n.label}\")\n"
        f"        self.num_attention_layers = len(config.layer_types) - self.num_linear_layers\n"
        f"        self.num_key_value_heads = config.num_key_value_heads\n"
        f"\n"
        f"    def generate(self, input_name: str, framework: str = \"pt\", int_dtype: str = \"int64\", float_dtype: str = \"fp32\"):\n"
        f"        cache = []\n"
        f"        for _ in range(self.num_linear_layers):\n"
        f"            state_shape = (self.batch_size, self.num_attention_heads, self.head_dim, self.head_dim)\n"
        f"            cache.append(self.random_float_tensor(state_shape, framework=framework, dtype=float_dtype))\n"
        f"        for _ in range(self.num_attention_layers):\n"
        f"            kv_shape = (self.batch_size, self.num_key_value_heads, self.sequence_length, self.head_dim)\n"
        f"            cache.append(self.random_float_tensor(kv_shape, framework=framework, dtype=float_dtype))\n"
        f"            cache.append(self.random_float_tensor(kv_shape, framework=framework, dtype=float_dtype))\n"
        f"        return cache\n")


def cache_axes_source(n: Names) -> str:
    """add_past_key_values of the export config (a method of the registered class)."""
    return (
        f"def add_past_key_values(self, inputs_or_outputs: Dict[str, Dict[int, str]], direction: str):\n"
        f"    if direction not in [\"inputs\", \"outputs\"]:\n"
        f"        raise ValueError(f'direction must either be \"inputs\" or \"outputs\", but {{direction}} was given')\n"
        f"    if direction == \"inputs\":\n"
        f"        decoder_sequence_name = \"past_sequence_length\"\n"
        f"        cache_name_prefix = \"cache_params.past\"\n"
        f"    else:\n"
        f"        decoder_sequence_name = \"past_sequence_length + sequence_length\"\n"
        f"        cache_name_prefix = \"cache_params.present\"\n"
        f"    layer_types = self._normalized_config.layer_types\n"
        f"    num_linear_layers = layer_types.count(\"{n.label}\")\n"
        f"    # a lightning attention state is a recurrent state: named as the state-space ones, so the stateful\n"
        f"    # export and OVModelWithMambaForCausalLM carry it\n"
        f"    for i in range(num_linear_layers):\n"
        f"        inputs_or_outputs[f\"{{cache_name_prefix}}.ssm.{{i}}\"] = {{0: \"batch_size\"}}\n"
        f"    for i in range(len(layer_types) - num_linear_layers):\n"
        f"        inputs_or_outputs[f\"{{cache_name_prefix}}.key.{{i}}\"] = {{0: \"batch_size\", 2: decoder_sequence_name}}\n"
        f"        inputs_or_outputs[f\"{{cache_name_prefix}}.value.{{i}}\"] = {{0: \"batch_size\", 2: decoder_sequence_name}}\n")
