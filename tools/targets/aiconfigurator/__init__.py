"""aiconfigurator: an architecture's family entry, parser fields and packaged config (see target.py)."""

from tools.targets.aiconfigurator.target import AIConfiguratorTarget as Target

__all__ = ["Target"]
