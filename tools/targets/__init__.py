"""The registry of targets: one line each, a dotted path to the package's `Target` class.

Nothing is discovered: adding a target is adding its line here (and its folders).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from tools.errors import UserError

REGISTRY = {
    "optimum-intel": "tools.targets.optimum_intel:Target",
    "flashinfer-bench": "tools.targets.flashinfer_bench:Target",
    "veomni": "tools.targets.veomni:Target",
    "aiconfigurator": "tools.targets.aiconfigurator:Target",
    "nemo-automodel": "tools.targets.nemo_automodel:Target",
}
DEFAULT_TARGET = "optimum-intel"


def names() -> list[str]:
    return sorted(REGISTRY)


def target_class(key: str):
    try:
        path = REGISTRY[key]
    except KeyError:
        raise UserError(f"unknown target {key!r}; known targets: {', '.join(names())}") from None
    if not isinstance(path, str):  # a class (or factory) placed by a test or an embedding program
        return path
    module, _, attr = path.partition(":")
    return getattr(import_module(module), attr)


def get_target(key: str, cache_dir: Path):
    return target_class(key)(cache_dir)
