"""The local sandbox finds its interpreter when the project lives under /tmp (CI clones there, and .venv
is a link): the sandbox's own /tmp is a tmpfs, so the path it runs must be the link's target."""

from __future__ import annotations

import os
import sys

from sandboxes.local import LocalSandbox


def test_an_interpreter_reached_through_a_link_under_tmp_runs(tmp_path):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    link = tmp_path / "checkout" / ".venv"
    link.parent.mkdir()
    link.symlink_to(venv)
    box = LocalSandbox(python=str(link / "bin" / os.path.basename(sys.executable)))
    res = box.run([box.python, "-c", "import sys; print(sys.prefix)"])
    assert res.ok, res.stderr
    assert res.stdout.strip() == os.path.realpath(sys.prefix)  # still the venv, not the base interpreter
