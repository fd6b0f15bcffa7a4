"""Build, validate and cache tiny random models that keep a real config's architecture.

A tiny model is what every later check runs on (export, parity, generation), so it must be cheap,
deterministic and trustworthy: built in float32 from a fixed seed, validated once (finite and varied
logits, greedy generation that is not one repeated token, more than one expert routed), and cached under a
key of the raw config and this builder's version so a changed builder never reuses an old directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from pydantic import BaseModel

from tools.hf.config import Analysis, ConfigError, analyze
from tools.tiny.shrink import shrink_config

BUILDER_VERSION = "tiny-6"  # bump whenever the shrink rules or the saved layout change
MARKER = "onboard_tiny.json"
DEFAULT_MAX_PARAMS = 20_000_000
PROMPTS = ("The quick brown fox", "Numbers like 42 and 3.14")


class TinyModelError(RuntimeError):
    """transformers could not build, save or run the tiny model; one line, for reports."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split())[:600])


class TinyModel(BaseModel):
    path: Path
    config: dict
    num_params: int
    layer_pattern: list[str]
    cached: bool
    build_seconds: float
    validation: dict
    digest: str | None = None  # of the files the checks read (see `digest`)


def cache_key(raw: dict, seed: int = 0) -> str:
    blob = json.dumps({"config": raw, "builder": BUILDER_VERSION, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_tiny(raw: dict, cache_dir: Path, *, seed: int = 0, validate: bool = True,
               max_params: int = DEFAULT_MAX_PARAMS, max_seq: int = 64) -> TinyModel:
    """The cached tiny model for `raw`, building (and validating) it first when no valid copy exists."""
    start = time.monotonic()
    analysis = analyze(raw)
    _check_buildable(raw)
    cache_dir = Path(cache_dir)
    final = cache_dir / f"{_safe(raw['model_type'])}-{cache_key(raw, seed)}"
    reused = _reuse(final, validate)
    if reused is not None:
        return reused
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        marker = _build_into(tmp, raw, analysis, seed=seed, max_params=max_params, max_seq=max_seq)
        if validate:
            marker["validation"] = validate_tiny(tmp)
            if not marker["validation"]["ok"]:
                raise TinyModelError(f"tiny {raw['model_type']} failed validation: "
                                     f"{'; '.join(marker['validation']['problems'])}")
        marker["build_seconds"] = round(time.monotonic() - start, 3)
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        _publish(tmp, final, validate)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    got = _reuse(final, validate)
    if got is None:  # pragma: no cover - only if the filesystem lies to us
        raise TinyModelError(f"tiny model at {final} did not pass its own invariant check after building")
    return got.model_copy(update={"cached": False})


def _break_router_ties(model, tiny: Analysis, std: float) -> list[str]:
    """Draw all-zero router weights at random.

    Some families create their router with torch.zeros and leave it to the checkpoint (Ernie 4.5 MoE's
    _init_weights skips it). A from-config model then scores every expert alike, top-k chooses among exact
    ties, and which experts win is up to the runtime: PyTorch and OpenVINO differ, and parity fails for a
    reason no real checkpoint has."""
    import torch

    experts = (tiny.moe or {}).get("num_experts")
    fixed = []
    if not experts:
        return fixed
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and p.dim() == 2 and p.shape[0] == experts and not p.any():
                p.normal_(0.0, std)
                fixed.append(name)
    return fixed


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def config_class_for(raw: dict):
    """CONFIG_MAPPING's class, or the config class of the named architecture (decoder sub-configs)."""
    import transformers
    from transformers import CONFIG_MAPPING

    mt = raw["model_type"]
    if mt in CONFIG_MAPPING:
        return CONFIG_MAPPING[mt]
    for name in raw.get("architectures") or []:
        cfg = getattr(getattr(transformers, name, None), "config_class", None)
        if cfg is not None and getattr(cfg, "model_type", None) == mt:
            return cfg
    return None


def _check_buildable(raw: dict) -> None:
    mt = raw["model_type"]
    if config_class_for(raw) is None:
        extra = " (the config names remote code in auto_map)" if raw.get("auto_map") else ""
        raise ConfigError(f"cannot build a tiny {mt}: transformers has no {mt!r} model type{extra}")


def model_class(config):
    """The class named in `architectures` when transformers has it, else the causal-LM auto class."""
    import transformers
    from transformers import AutoModelForCausalLM

    for name in config.architectures or []:
        cls = getattr(transformers, name, None)
        if cls is not None and hasattr(cls, "from_pretrained"):
            return cls
    return AutoModelForCausalLM


def _build_into(out: Path, raw: dict, analysis: Analysis, *, seed: int, max_params: int, max_seq: int) -> dict:
    import torch
    from transformers.utils import logging as hf_logging

    from tools.tiny.tokenizer import build_tokenizer

    hf_logging.disable_progress_bar()

    tiny = shrink_config(raw, analysis, max_seq=max_seq)
    built = _make_config(config_class_for(raw), tiny)
    cls = model_class(built)
    config = _fit_config(cls, built)
    top = saved_config(cls, built, config)
    torch.manual_seed(seed)
    try:
        model = cls._from_config(config, dtype=torch.float32) if hasattr(cls, "_from_config") \
            else cls.from_config(config, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise TinyModelError(f"building {cls.__name__} failed: {type(exc).__name__}: {exc}") from None
    # the layers live in the model's own (possibly sub-) config, whatever wraps it in config.json
    tiny_analysis = analyze(json.loads(config.to_json_string()))
    text = _text_config(config)
    _break_router_ties(model, tiny_analysis, float(getattr(text, "initializer_range", None) or 0.02))
    model.eval()
    n = sum(p.numel() for p in model.parameters())
    if n > max_params:
        part, size = _largest_part(model)
        raise TinyModelError(f"tiny {raw['model_type']} has {n:,} parameters, over the budget of {max_params:,}; "
                             f"largest part {part} ({size:,}): a size this builder cannot shrink")
    out.mkdir(parents=True)
    try:
        model.save_pretrained(out, safe_serialization=True)
        if top is not config:
            top.save_pretrained(out)  # replaces the sub-config's config.json, which AutoConfig cannot read
    except Exception as exc:  # noqa: BLE001
        raise TinyModelError(f"saving the tiny {raw['model_type']} failed: {type(exc).__name__}: {exc}") from None
    build_tokenizer(out, text.vocab_size, bos_token_id=_tok_id(config, "bos_token_id"),
                    eos_token_id=_tok_id(config, "eos_token_id"), pad_token_id=_tok_id(config, "pad_token_id"),
                    model_max_length=max(256, 4 * max_seq))
    return {"builder_version": BUILDER_VERSION, "model_type": raw["model_type"], "seed": seed,
            "saved_model_type": top.model_type, "class": cls.__name__, "num_params": n,
            "layer_pattern": tiny_analysis.layer_pattern, "original_kinds": sorted(set(analysis.layer_pattern)),
            "config_sha": _sha(out / "config.json"), "files": _files(out)}


def _make_config(config_cls, tiny: dict):
    """Instantiate, dropping generic keys a nested sub-config refuses (a to_dict/from_dict asymmetry)."""
    for _ in range(4):
        try:
            return config_cls.from_dict(tiny)
        except Exception as exc:  # noqa: BLE001 - transformers validates with many exception types
            unknown = re.search(r"unknown kwargs=\{([^}]*)\}", str(exc))
            if not unknown:
                raise TinyModelError(f"transformers rejected the tiny {tiny['model_type']} config: "
                                     f"{type(exc).__name__}: {exc}") from None
            keys = re.findall(r"'([^']+)':", unknown.group(1))
            tiny = {k: ({kk: vv for kk, vv in v.items() if kk not in keys} if isinstance(v, dict) else v)
                    for k, v in tiny.items()}
    raise TinyModelError(f"transformers keeps rejecting nested keys of the tiny {tiny['model_type']} config")


def _fit_config(cls, config):
    """Causal-LM classes of multimodal families take the text sub-config, as from_pretrained would give."""
    wanted = getattr(cls, "config_class", None)
    if wanted is None or isinstance(config, wanted) or not hasattr(config, "get_text_config"):
        return config
    sub = config.get_text_config()
    if isinstance(sub, wanted):
        sub.architectures = [cls.__name__]
        return sub
    return config


def saved_config(cls, built, fitted):
    """The config to write as config.json: one AutoConfig can read, whose model_type is the top-level one
    (emu3, not emu3_text_model) that optimum's TasksManager and the patch key on. AutoModelForCausalLM
    then hands the causal-LM class its text sub-config itself, exactly as for a published checkpoint."""
    from transformers import CONFIG_MAPPING

    if fitted is not built:
        built.architectures = [cls.__name__]
        return built
    if fitted.model_type in CONFIG_MAPPING:
        return fitted
    return _wrap_decoder(cls, fitted) or fitted


# what published checkpoints pair a bare decoder with (musicgen: a T5 text encoder and an EnCodec codec);
# only their configs are saved, the causal-LM class never builds them
COMPANIONS = {"text_encoder": "t5", "audio_encoder": "encodec"}


def _wrap_decoder(cls, decoder):
    """The top-level config whose causal-LM class is `cls` and which holds `decoder` in one of its slots."""
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    for mt, name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items():
        top = CONFIG_MAPPING[mt] if name == cls.__name__ and mt in CONFIG_MAPPING else None
        subs = getattr(top, "sub_configs", None) or {}
        slot = next((k for k, v in subs.items() if v is type(decoder)), None)
        if slot is None:
            continue
        parts = {k: _tiny_companion(COMPANIONS[k], decoder) for k in subs if k != slot and k in COMPANIONS}
        try:
            wrapped = top(**parts, **{slot: decoder.to_dict()})
        except Exception:  # noqa: BLE001 - a slot this table does not know; keep the decoder's own config
            continue
        wrapped.architectures = [cls.__name__]
        return wrapped
    return None


def _tiny_companion(model_type: str, decoder) -> dict:
    from transformers import CONFIG_MAPPING

    from tools.tiny.shrink import shrink_text
    from tools.tiny.sizes import DROP_KEYS

    d = {k: v for k, v in shrink_text(CONFIG_MAPPING[model_type]().to_dict()).items() if k not in DROP_KEYS}
    if "codebook_size" in d:  # the decoder predicts codec codes: one vocabulary
        d["codebook_size"] = decoder.vocab_size
    return d


def _largest_part(model) -> tuple[str, int]:
    sizes: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = ".".join(name.split(".")[:3])
        sizes[part] = sizes.get(part, 0) + p.numel()
    return max(sizes.items(), key=lambda kv: kv[1]) if sizes else ("?", 0)


def _text_config(config):
    getter = getattr(config, "get_text_config", None)
    return getter() if getter else config


def _tok_id(config, name: str):
    for c in (_text_config(config), config):
        v = getattr(c, name, None)
        if v is not None:
            return v
    gen = getattr(config, "generation_config", None)
    return getattr(gen, name, None) if gen is not None else None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digest(path: Path) -> str:
    """One hash of everything a check reads from a tiny model (weights, config, tokenizer; not the marker,
    which records build times): equal digests mean a rebuilt model gives the same numbers."""
    h = hashlib.sha256()
    for p in sorted(Path(path).iterdir()):
        if p.is_file() and p.name != MARKER:
            h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _files(d: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(d.iterdir()) if p.is_file() and p.name != MARKER}


# -- cache ---------------------------------------------------------------------------------------------


def check_invariants(path: Path) -> dict | None:
    """The marker when every invariant still holds, else None (the directory must then be rebuilt)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("builder_version") != BUILDER_VERSION:
        return None
    files = marker.get("files") or {}
    needed = {"config.json", "tokenizer.json", "tokenizer_config.json"}
    if not needed <= set(files) or not any(f.endswith(".safetensors") for f in files):
        return None
    for name, size in files.items():
        p = path / name
        if not p.is_file() or p.stat().st_size != size:
            return None
    if _sha(path / "config.json") != marker.get("config_sha"):
        return None
    if not set(marker.get("original_kinds") or []) <= set(marker.get("layer_pattern") or []):
        return None  # a layer kind of the original was lost in shrinking
    return marker


def _reuse(final: Path, validate: bool) -> TinyModel | None:
    marker = check_invariants(final)
    if marker is None:
        return None
    validation = marker.get("validation") or {}
    if validate and not validation.get("ok"):
        return None
    return TinyModel(path=final, config=json.loads((final / "config.json").read_text()),
                     num_params=marker["num_params"], layer_pattern=marker["layer_pattern"], cached=True,
                     build_seconds=marker.get("build_seconds", 0.0), validation=validation, digest=digest(final))


def _publish(tmp: Path, final: Path, validate: bool) -> None:
    """Rename into place; a concurrent builder may have won, and a stale directory is moved aside first."""
    if final.exists():
        if _reuse(final, validate) is not None:
            return
        trash = final.with_name(f".stale-{final.name}-{uuid.uuid4().hex[:6]}")
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if _reuse(final, validate) is None:
            raise


# -- validation ----------------------------------------------------------------------------------------


def validate_tiny(path: Path) -> dict:
    """Run the saved model as a user would: finite, varied logits; non-trivial greedy text; experts routed."""
    from tools.tiny.validate import run_checks

    return run_checks(Path(path))
