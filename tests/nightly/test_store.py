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


def test_a_prompt_or_llm_change_is_a_new_builder(tmp_path):
    """The LLM's prompts and loop decide outcomes too: changing one must retry what was attempted."""
    for rel in ("prompts/llm/task.md.j2", "agent/llm/loop.py", "prompts/targets/x/playbook.md.j2",
                "sandboxes/targets/x/Dockerfile"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1\n")
    v1 = builder_version(tmp_path)
    for rel in ("prompts/llm/task.md.j2", "agent/llm/loop.py", "prompts/targets/x/playbook.md.j2",
                "sandboxes/targets/x/Dockerfile"):
        (tmp_path / rel).write_text("v2\n")
        assert builder_version(tmp_path) != v1, f"{rel} did not change the builder version"
        v1 = builder_version(tmp_path)
