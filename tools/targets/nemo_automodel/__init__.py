"""NeMo AutoModel target: custom model implementations behind MODEL_ARCH_MAPPING."""

from tools.targets.nemo_automodel.target import NemoAutoModelTarget as Target

__all__ = ["Target"]
