"""Templates render with all their variables and refuse to render without them."""

import pytest
from jinja2 import UndefinedError

from prompts import render


def test_playbook_renders_and_is_strict():
    text = render("targets/optimum_intel/playbook.md.j2", model_type="cwm", display_name="CWM", tolerance=1e-4,
                  situation="S1", analysis_summary="dense", attempts=[])
    assert "`cwm`" in text and "candidates already tried: none" in text
    with pytest.raises(UndefinedError):
        render("targets/optimum_intel/playbook.md.j2", model_type="cwm")
