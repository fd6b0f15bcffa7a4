"""A stand-in for tools.tiny.model.build_tiny: a directory the real invariant check accepts (so a resume that
checks the tiny model is still there sees it), without building a model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from tools.tiny.model import BUILDER_VERSION, MARKER, digest


def write_tiny_dir(path: Path, raw: dict) -> str:
    """The files and marker check_invariants reads; returns the directory's digest."""
    path.mkdir(parents=True, exist_ok=True)
    files = {"config.json": json.dumps(raw), "tokenizer.json": "{}", "tokenizer_config.json": "{}",
             "model.safetensors": "not a model: the scripted target never loads it"}
    for name, text in files.items():
        (path / name).write_text(text)
    import hashlib

    marker = {"builder_version": BUILDER_VERSION, "files": {n: (path / n).stat().st_size for n in files},
              "config_sha": hashlib.sha256((path / "config.json").read_bytes()).hexdigest()}
    (path / MARKER).write_text(json.dumps(marker))
    return digest(path)


def fake_tiny(tmp: Path):
    def build(raw, cache_dir, **kw):
        d = write_tiny_dir(tmp / "tiny", raw)
        return SimpleNamespace(path=tmp / "tiny", num_params=10, config=raw, cached=True, build_seconds=0.0,
                               digest=d)
    return build
