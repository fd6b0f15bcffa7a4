"""FlashInfer-Bench: a models.ts entry and the kernel Definitions it needs (see target.py)."""

from tools.targets.flashinfer_bench.target import FlashInferBenchTarget as Target

__all__ = ["Target"]
