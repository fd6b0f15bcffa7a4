"""pytest plugin (`-p onboard_gc`): the objects that exist once collection is done are frozen before the
first test runs.

By then torch, transformers, OpenVINO and the repository are imported: about 680,000 objects the cyclic
collector tracks. An optimum-intel export calls gc.collect() four times, and each call walked all of them
(0.35-0.5 s a call, 40 % of a tiny model's export). gc.freeze() moves them to a generation the collector
skips, as CPython documents for long-lived state; what the tests create is still collected as before.
"""

from __future__ import annotations

import gc

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session) -> None:
    gc.collect()  # collection's own garbage is freed, not frozen
    gc.freeze()
