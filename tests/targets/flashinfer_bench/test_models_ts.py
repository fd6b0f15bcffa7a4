"""models.ts as data: a generated entry renders in Prettier's style, reads back, and upserts in place."""

from __future__ import annotations

from pathlib import Path

from tools.targets.flashinfer_bench import model as fbm
from tools.targets.flashinfer_bench import models_ts
from tools.targets.flashinfer_bench.entry import build_entry
from tests import TESTS

FIXTURES = TESTS / "fixtures" / "flashinfer_bench"


def toy_entry() -> dict:
    """The fixture toy model's entry at TP=2 and page sizes 1 and 64: long definition lists to wrap."""
    from tools.hf.config import analyze

    raw = {"model_type": "toy", "architectures": ["ToyForCausalLM"], "hidden_size": 64, "num_hidden_layers": 3,
           "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 16, "intermediate_size": 96,
           "vocab_size": 1000}
    index = fbm.index_dir(FIXTURES / "sglang_models")
    return build_entry(index, analyze(raw).model_dump(mode="json"), fbm.Parallel(tp=2, page_sizes=(1, 64)))[0]


def test_render_is_prettier_shaped_and_round_trips():
    entry = toy_entry()
    text = models_ts.upsert_entry((FIXTURES / "repo" / models_ts.MODELS_TS).read_text(), entry)
    assert ";" not in models_ts.render_entry(entry)
    assert max(len(line) for line in text.splitlines()) <= models_ts.PRINT_WIDTH
    entries = models_ts.read_entries(text, strict=True)
    assert [e["id"] for e in entries] == ["toy-1b", entry["id"]]
    assert entries[1]["modules"] == entry["modules"]
    assert text.rstrip().endswith("export default models")
    # a second upsert replaces in place, never duplicates
    again = models_ts.upsert_entry(text, {**entry, "description": "changed"})
    assert [e["id"] for e in models_ts.read_entries(again)] == ["toy-1b", entry["id"]] and "changed" in again


def test_long_definition_lists_wrap_one_per_line():
    entry = {"id": "x", "name": "X", "description": "d", "modules": {
        "attn": {"count": 1, "type": "layer", "definitions": ["a" * 40, "b" * 40, "c" * 40]}}}
    lines = models_ts.render_entry(entry).splitlines()
    assert '        definitions: [' in lines and f'          "{"a" * 40}",' in lines
