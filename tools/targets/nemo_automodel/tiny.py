"""A tiny config derived from the real config.json: every field kept, only sizes shrunk.

Built from the checkpoint's own config rather than transformers' defaults, which drop fields such as
qk-norm switches or a shared expert's width. Pure JSON: the sandbox builds the model from it with the
transformers the repository pins, so the host's transformers version never shapes the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

HIDDEN, HEADS, VOCAB, LAYERS, EXPERTS, TOP_K = 64, 4, 256, 2, 4, 2
SIZES = {"hidden_size": HIDDEN, "intermediate_size": 128, "moe_intermediate_size": 32,
         "shared_expert_intermediate_size": 48, "vocab_size": VOCAB, "num_hidden_layers": LAYERS,
         "num_attention_heads": HEADS, "max_position_embeddings": 256, "max_window_layers": LAYERS}
EXPERT_COUNTS = ("num_experts", "num_local_experts", "n_routed_experts")
DROP = ("quantization_config", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
        "architectures", "auto_map", "bos_token_id", "eos_token_id", "pad_token_id")


def derive_tiny(real: dict) -> dict:
    """`real`: the (text) config.json as a dict. Returns a config of a ~100k-parameter model."""
    cfg = {k: v for k, v in real.items() if k not in DROP}
    for key, value in SIZES.items():
        if key in cfg and cfg[key] is not None:
            cfg[key] = value
    heads, kv = real.get("num_attention_heads") or HEADS, real.get("num_key_value_heads")
    if kv:
        cfg["num_key_value_heads"] = HEADS if kv == heads else HEADS // 2  # keep MHA vs GQA
    if "head_dim" in cfg and cfg["head_dim"]:
        cfg["head_dim"] = HIDDEN // HEADS
    for key in EXPERT_COUNTS:
        if cfg.get(key):
            cfg[key] = EXPERTS
    if cfg.get("num_experts_per_tok"):
        cfg["num_experts_per_tok"] = min(TOP_K, real["num_experts_per_tok"])
    if cfg.get("first_k_dense_replace"):
        cfg["first_k_dense_replace"] = 1
    if isinstance(cfg.get("mlp_only_layers"), list):
        cfg["mlp_only_layers"] = [i for i in cfg["mlp_only_layers"] if i < LAYERS]
    if isinstance(cfg.get("layer_types"), list):
        cfg["layer_types"] = cfg["layer_types"][:LAYERS]
    if cfg.get("sliding_window"):
        cfg["sliding_window"] = min(cfg["sliding_window"], 64)
    cfg["tie_word_embeddings"] = bool(real.get("tie_word_embeddings", False))
    cfg["model_type"] = real["model_type"]
    return cfg


def write_tiny(real: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(derive_tiny(real), indent=2, sort_keys=True))
    return directory
