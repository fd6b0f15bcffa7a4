"""Attempt records and the builder version that keys them."""

from __future__ import annotations

from agent.nightly.status import Row
from agent.nightly.store import KEEP_ATTEMPTS, AttemptStore, builder_version


def test_builder_version_follows_the_code_that_decides_outcomes(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "agent" / "nodes").mkdir(parents=True)
    (tmp_path / "tools" / "a.py").write_text("x = 1\n")
    (tmp_path / "agent" / "cli_nightly.py").write_text("faces do not count\n")
    v1 = builder_version(tmp_path)
    (tmp_path / "agent" / "cli_nightly.py").write_text("changed face\n")
    assert builder_version(tmp_path) == v1
    (tmp_path / "tools" / "a.py").write_text("x = 2\n")
    assert builder_version(tmp_path) != v1


def test_history_is_bounded_and_a_torn_file_is_no_history(tmp_path):
    store = AttemptStore(tmp_path, "t")
    for i in range(KEEP_ATTEMPTS + 5):
        store.record(Row(model_type="m", status="timeout", detail=str(i), finished_at=float(i)))
    hist = store.history("m")
    assert len(hist) == KEEP_ATTEMPTS and hist[-1].detail == str(KEEP_ATTEMPTS + 4)
    (tmp_path / "nightly" / "t" / "attempts" / "m.json").write_text("[{")
    assert store.history("m") == []
