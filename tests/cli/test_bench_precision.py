"""`onboard bench precision`: bad input is refused before any model is measured."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import tools.targets.optimum_intel.precision as precision
from agent.cli.main import app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "optimum_intel"


def test_a_type_transformers_does_not_know_is_refused_before_measuring(tmp_path, monkeypatch):
    """It used to surface after every earlier type had been measured (minutes), losing their rows."""
    measured = []
    monkeypatch.setattr(precision, "measure_supported", lambda model_type, *a, **k: measured.append(model_type))
    # both are registered in the fixture checkout; transformers 5.5 has no `exaone` (remote code only)
    res = CliRunner().invoke(app, ["bench", "precision", "llama", "exaone", "--repo", str(FIXTURE),
                                   "--data-dir", str(tmp_path / "data")])
    assert res.exit_code != 0 and "exaone" in res.output
    assert "Traceback" not in res.output and measured == []
