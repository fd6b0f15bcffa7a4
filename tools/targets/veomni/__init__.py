"""The VeOmni target: a model package under veomni/models/transformers/, proved on CPU in VeOmni's stack."""

from tools.targets.veomni.target import VeOmniTarget as Target

__all__ = ["Target"]
