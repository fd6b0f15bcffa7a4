"""Load a Hugging Face config from wherever the user points, and classify its architecture.

Loading accepts a config.json, a model directory, a model_type transformers knows, or a Hub id; every
failure is a `ConfigError` with a one-line message because the faces print it as is. Classification is a
pure function of the raw dict (no transformers class needed), so configs of models transformers does not
know yet — the ones worth onboarding — are analysed the same way.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from tools.errors import UserError
from tools.hf import facts as pat
from tools.hf.modular import modular_lineage
from tools.untrusted_file import nesting, not_regular, read_bounded

MAX_CONFIG_BYTES = 2 * 1024 * 1024  # real configs are a few KB; anything bigger is not a config
HUB_TIMEOUT_S = 15.0
# ASCII only and matched whole (fullmatch): `$` would let a trailing newline through, `\w` any script's
# letters, and a model_type becomes branch names, file names and thread ids.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}", re.ASCII)
MODEL_TYPE = re.compile(r"[A-Za-z0-9][\w.-]{0,63}", re.ASCII)
MAX_DEPTH = 32  # real configs nest three or four levels; deeper is hostile and would exhaust recursion

# Keys that must be positive ints when present (null allowed): a wrong type here would only surface as
# an obscure error deep inside model construction.
POSITIVE_INT_KEYS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
    "vocab_size", "max_position_embeddings", "head_dim", "moe_intermediate_size", "n_routed_experts",
    "num_local_experts", "num_experts", "num_experts_per_tok", "kv_lora_rank", "q_lora_rank",
    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "n_layer", "n_embd", "n_head",
    "d_model",
)
PER_LAYER_OK = ("intermediate_size",)  # gemma3n gives one size per layer
NON_NEGATIVE_INT_KEYS = ("sliding_window", "first_k_dense_replace", "n_shared_experts", "num_nextn_predict_layers",
                         "mtp_num_hidden_layers")


class ConfigError(UserError):
    """The config cannot be loaded or makes no sense; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class LoadedConfig(BaseModel):
    raw: dict
    source: str
    origin: Literal["file", "dir", "model_type", "hub"]


# -- loading -------------------------------------------------------------------------------------------


def load_config(source: str | Path, *, trust_remote_code: bool = False) -> LoadedConfig:
    """Resolve `source` to a raw config dict; `trust_remote_code` only matters for Hub configs with code."""
    text = str(source).strip(" ")
    if not text:
        raise ConfigError("empty model reference: give a config.json, a model directory, a model_type or a Hub id")
    if any(ch < " " or ch == "\x7f" for ch in text):
        raise ConfigError(f"model reference {text!r} contains control characters (a newline, a tab?)")
    try:
        return _load_config(text, trust_remote_code)
    except OSError as exc:  # a name too long for the filesystem, a path through a file
        raise ConfigError(f"cannot read {text[:200]!r}: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # `~nosuchuser/config.json`
        raise ConfigError(f"cannot read {text[:200]!r}: {exc}") from None


def _load_config(text: str, trust_remote_code: bool) -> LoadedConfig:
    path = Path(text).expanduser()
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.is_file():
            why = not_regular(cfg)
            raise ConfigError(f"{cfg} {why}" if why else f"{path} is a directory without config.json")
        raw = _read_json(cfg)
        _attach_modelopt_quant(raw, path / "hf_quant_config.json")
        return LoadedConfig(raw=raw, source=str(cfg.resolve()), origin="dir")
    if path.is_file():
        return LoadedConfig(raw=_read_json(path), source=str(path.resolve()), origin="file")
    if why := not_regular(path):
        raise ConfigError(f"{text} {why}")
    if text.endswith(".json") or text.startswith((".", "/", "~")):
        raise ConfigError(f"no such file: {text}")
    if MODEL_TYPE.fullmatch(text):
        return LoadedConfig(raw=_default_config(text), source=text, origin="model_type")
    if HUB_ID.fullmatch(text):
        return LoadedConfig(raw=_hub_config(text, trust_remote_code), source=text, origin="hub")
    raise ConfigError(f"cannot read {text!r} as a path, a model_type or a Hub id (org/name)")


def _read_json(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {size // 1024} KB: too large to be a config.json (limit "
                          f"{MAX_CONFIG_BYTES // 1024} KB)")
    try:
        data = read_bounded(path, MAX_CONFIG_BYTES)  # /proc files report size 0 and can be endless
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KB: too large to be a config.json")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests deeper than any config (limit {MAX_DEPTH} levels)") from None
    return validate_raw(raw, where=str(path))


def _attach_modelopt_quant(raw: dict, path: Path) -> None:
    """NVIDIA ModelOpt checkpoints describe their quantisation beside config.json, not inside it."""
    if raw.get("quantization_config") or not path.is_file():
        return
    try:
        extra = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(extra, dict) and isinstance(extra.get("quantization"), dict):
        raw["quantization_config"] = {"quant_method": "modelopt", **extra["quantization"]}


def validate_raw(raw: Any, *, where: str = "config") -> dict:
    """Structural checks shared by every source; returns `raw` unchanged when it passes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if nesting(raw, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError(f"{where}: nests deeper than any config (limit {MAX_DEPTH} levels)")
    mt = raw.get("model_type")
    if mt is None:
        raise ConfigError(f"{where}: missing model_type")
    if not isinstance(mt, str) or not MODEL_TYPE.fullmatch(mt):
        raise ConfigError(f"{where}: model_type must be a short identifier string, got {json.dumps(mt)[:60]}")
    archs = raw.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise ConfigError(f"{where}: architectures must be a list of class names")
    _check_sizes(raw, where)
    for key in pat.NESTED_TEXT_KEYS + ("vision_config",):
        sub = raw.get(key)
        if sub is not None and not isinstance(sub, dict):
            raise ConfigError(f"{where}: {key} must be an object, got {type(sub).__name__}")
        if isinstance(sub, dict):
            _check_sizes(sub, f"{where}: {key}")
    return raw


def _check_sizes(d: dict, where: str) -> None:
    for key in POSITIVE_INT_KEYS + NON_NEGATIVE_INT_KEYS:
        v = d.get(key)
        if v is None:
            continue
        if isinstance(v, list) and key in PER_LAYER_OK and v and all(isinstance(x, int) and x > 0 for x in v):
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {json.dumps(v)[:40]}")
        floor = 1 if key in POSITIVE_INT_KEYS else 0
        if v < floor:
            raise ConfigError(f"{where}: {key} must be >= {floor}, got {v}")
    layers = d.get("layer_types")
    if layers is not None and not (isinstance(layers, list) and all(isinstance(x, str) for x in layers)):
        raise ConfigError(f"{where}: layer_types must be a list of strings")


def known_model_types() -> list[str]:
    from transformers import CONFIG_MAPPING

    return sorted(CONFIG_MAPPING.keys())


def _default_config(model_type: str) -> dict:
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        import difflib

        close = difflib.get_close_matches(model_type, known_model_types(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model_type {model_type!r}: transformers has no such config class and "
                          f"no file or directory of that name exists{hint}")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    try:
        config = CONFIG_MAPPING[model_type]()
    except Exception as exc:  # noqa: BLE001 - composite configs (musicgen) need their parts
        config = _causal_lm_default(causal)
        if config is None:
            raise ConfigError(f"transformers cannot build a default {model_type} config: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
    raw = config.to_dict()
    if not raw.get("architectures"):  # defaults name no class; the causal-LM one is what gets exported
        raw["architectures"] = [causal] if causal else []
    raw.pop("id2label", None), raw.pop("label2id", None)  # int keys would not survive a JSON round trip
    return validate_raw(json.loads(json.dumps(raw, default=str)), where=model_type)


def _causal_lm_default(class_name: str | None):
    """The default config of the causal-LM class itself (e.g. a decoder-only sub-config)."""
    import transformers

    cls = getattr(transformers, class_name, None) if class_name else None
    try:
        return cls.config_class() if cls is not None else None
    except Exception:  # noqa: BLE001
        return None


def _hub_config(repo_id: str, trust_remote_code: bool) -> dict:
    """Fetch config.json from the Hub with a hard deadline: an unreachable Hub must fail in seconds."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)  # the Hub's own rules (no `..`, `--`, edge dots) are stricter than HUB_ID
    except HFValidationError as exc:
        raise ConfigError(f"{repo_id!r} is not a Hub id: {exc}") from None
    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return _check_remote(_read_json(Path(cached)), repo_id, trust_remote_code)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ConfigError(f"{repo_id}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                          f"pass a config.json or a model_type instead")
    box: dict = {}

    def fetch() -> None:
        try:
            box["path"] = hf_hub_download(repo_id, "config.json", etag_timeout=5)
        except Exception as exc:  # noqa: BLE001 - reported below as one line
            box["error"] = exc

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(HUB_TIMEOUT_S)
    if "path" not in box:
        why = f"{type(box['error']).__name__}" if "error" in box else f"no answer in {HUB_TIMEOUT_S:.0f}s"
        raise ConfigError(f"{repo_id}: the Hugging Face Hub is unreachable ({why}); pass a config.json, "
                          f"a model directory or a model_type instead")
    return _check_remote(_read_json(Path(box["path"])), repo_id, trust_remote_code)


def _check_remote(raw: dict, repo_id: str, trust_remote_code: bool) -> dict:
    from transformers import CONFIG_MAPPING

    if raw.get("auto_map") and raw["model_type"] not in CONFIG_MAPPING and not trust_remote_code:
        raise ConfigError(f"{repo_id}: model_type {raw['model_type']!r} needs the repository's own code; "
                          f"rerun with trust_remote_code enabled if you trust it")
    return raw


# -- analysis ------------------------------------------------------------------------------------------


class Analysis(BaseModel):
    model_type: str
    architectures: list[str]
    features: list[str]
    kind: str
    layer_pattern: list[str]
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    sliding_window: int | None = None
    moe: dict | None = None
    mla: dict | None = None
    mtp_layers: int = 0
    tie_word_embeddings: bool = False
    activation: str | None = None
    rope: dict = {}
    transformers_version: str | None = None
    auto_map: dict | None = None
    text_config_key: str | None = None
    lineage: list[str] = []
    quantization: dict | None = None


def analyze(raw: dict) -> Analysis:
    raw = validate_raw(raw)
    key = pat.text_config_key(raw)
    text = {**raw, **raw[key]} if key else raw  # nested keys win; top-level fills what they omit
    model_type = raw["model_type"]
    layers = pat.layer_pattern(text)
    moe = pat.moe_info(text, len(layers) or None)
    mla = pat.mla_info(text)
    mtp = pat.mtp_layers(text)
    heads = pat.first_int(text, "num_attention_heads", "n_head", "num_heads", "n_heads")
    hidden = pat.first_int(text, "hidden_size", "d_model", "n_embd", "dim")
    tie = pat.tie_embeddings(raw, key)
    auto_map = raw.get("auto_map") or (raw[key].get("auto_map") if key else None)
    remote = bool(auto_map) and not _native(model_type)
    vlm = pat.is_vlm(raw, key)
    window = pat.sliding_window(text, layers)

    features = set()
    features.add("moe" if moe else "dense")
    if mla:
        features.add("mla")
    if vlm:
        features.add("vlm")
    if window is not None and any(t in ("sliding_attention", "chunked_attention") for t in layers):
        features.add("sliding_window")
    if any(t == "linear_attention" for t in layers):
        features.add("linear_attention")
    if any(t in pat.SSM_LAYERS for t in layers):
        features.add("ssm")
    if mtp:
        features.add("mtp")
    if tie:
        features.add("tied_embeddings")
    if remote:
        features.add("remote_code")
    kind = _kind(features, layers)
    quant = raw.get("quantization_config") or (raw[key].get("quantization_config") if key else None)
    return Analysis(
        model_type=model_type, architectures=list(raw.get("architectures") or []), features=sorted(features),
        kind=kind, layer_pattern=layers, num_layers=len(layers) or None, hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=pat.first_int(text, "num_key_value_heads", "num_kv_heads", "n_head_kv",
                                          "multi_query_group_num") or heads,
        head_dim=(mla["qk_nope_head_dim"] or 0) + (mla["qk_rope_head_dim"] or 0) if mla and mla["qk_rope_head_dim"]
        else pat.head_dim(text, hidden, heads),
        intermediate_size=pat.first_int(text, "intermediate_size", "ffn_dim", "n_inner", "d_ff",
                                        "ffn_hidden_size"),
        vocab_size=pat.first_int(text, "vocab_size", "padded_vocab_size"),
        max_position_embeddings=pat.first_int(text, "max_position_embeddings", "n_positions",
                                              "max_sequence_length", "seq_length"),
        sliding_window=window, moe=moe, mla=mla, mtp_layers=mtp, tie_word_embeddings=tie,
        activation=pat.activation(text), rope=pat.rope_info(text),
        transformers_version=raw.get("transformers_version"), auto_map=auto_map, text_config_key=key,
        lineage=modular_lineage(model_type), quantization=_quant_summary(quant),
    )


def _kind(features: set[str], layers: list[str]) -> str:
    if "vlm" in features:
        return "vlm"
    mixers = {pat.mixer_family(t) for t in layers} - {"mlp", "none"}
    if len(mixers) > 1:
        return "hybrid"
    if "ssm" in features or mixers == {"recurrent"}:
        return "ssm"
    if "linear_attention" in features:
        return "hybrid"
    for k in ("mla", "moe"):
        if k in features:
            return k
    return "dense"


def _native(model_type: str) -> bool:
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # pragma: no cover - transformers is a hard dependency
        return False
    return model_type in CONFIG_MAPPING


def _quant_summary(q: Any) -> dict | None:
    if not isinstance(q, dict):
        return None
    out = {"quant_method": q.get("quant_method") or q.get("quant_algo")}
    for k in ("quant_algo", "kv_cache_quant_algo", "fmt", "format", "weight_block_size", "bits", "group_size",
              "activation_scheme"):
        if k in q:
            out[k] = q[k]
    if "config_groups" in q:  # compressed-tensors: the first group tells the scheme
        groups = q["config_groups"]
        first = next(iter(groups.values()), {}) if isinstance(groups, dict) else {}
        weights = first.get("weights") or {}
        out["weights"] = {k: weights.get(k) for k in ("num_bits", "type", "group_size") if k in weights}
        if first.get("format"):
            out["format"] = first["format"]
    return out
