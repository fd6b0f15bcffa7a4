"""The test tree mirrors the source tree; TESTS is its root (fixtures/, data/)."""
from pathlib import Path

TESTS = Path(__file__).resolve().parent
