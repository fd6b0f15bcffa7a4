"""Target adapters, one module each; `get_target` is the only lookup."""

from __future__ import annotations

from pathlib import Path

from tools.errors import UserError


def _optimum_intel(cache_dir: Path):
    from tools.targets.optimum_intel.target import OptimumIntelTarget

    return OptimumIntelTarget(cache_dir)


def _flashinfer_bench(cache_dir: Path):
    from tools.targets.flashinfer_bench.target import FlashInferBenchTarget

    return FlashInferBenchTarget(cache_dir)


FACTORIES = {"optimum-intel": _optimum_intel, "flashinfer-bench": _flashinfer_bench}


def get_target(name: str, cache_dir: Path):
    try:
        factory = FACTORIES[name]
    except KeyError:
        raise UserError(f"unknown target {name!r}; known targets: {', '.join(sorted(FACTORIES))}") from None
    return factory(cache_dir)
