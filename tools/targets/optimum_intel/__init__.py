"""optimum-intel: export to OpenVINO IR (see target.py)."""

from tools.targets.optimum_intel.target import OptimumIntelTarget as Target

__all__ = ["Target"]
