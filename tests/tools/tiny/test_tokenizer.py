"""The offline tokenizer: loadable by AutoTokenizer, ids inside the vocabulary, specials where configured."""

from __future__ import annotations

import json

import pytest

from tools.tiny.tokenizer import build_tokenizer

TEXTS = ["The quick brown fox", "完全に未知の文字列 ✓ 🚀", "def f(x):\n    return x * 2", ""]


@pytest.mark.parametrize("vocab, ids", [
    (1024, {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}),
    (512, {"bos_token_id": 5, "eos_token_id": 7, "pad_token_id": 7}),
    (1024, {"bos_token_id": 3, "eos_token_id": [4, 9], "pad_token_id": None}),
    (1024, {"eos_token_id": 1000}),
    (300, {}),
])
def test_ids_inside_vocab_and_specials_placed(tmp_path, vocab, ids):
    from transformers import AutoTokenizer

    build_tokenizer(tmp_path, vocab, **ids)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tok) <= vocab
    for text in TEXTS:
        enc = tok(text).input_ids
        assert all(0 <= i < vocab for i in enc)
        assert tok.decode(enc, skip_special_tokens=True) == text  # byte-level BPE is lossless
    eos = ids.get("eos_token_id")
    want_eos = eos[0] if isinstance(eos, list) else eos
    assert tok.eos_token_id == want_eos
    assert tok.bos_token_id == ids.get("bos_token_id")
    assert tok.pad_token_id is not None  # batched generation always has a pad
    if ids.get("pad_token_id") is not None:
        assert tok.pad_token_id == ids["pad_token_id"]


def test_left_padding_for_batched_generation(tmp_path):
    from transformers import AutoTokenizer

    build_tokenizer(tmp_path, 1024, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    enc = tok(["a much longer prompt than the other", "hi"], padding=True)
    assert tok.padding_side == "left"
    assert enc.input_ids[1][0] == 0 and enc.attention_mask[1][0] == 0 and enc.attention_mask[1][-1] == 1


def test_deterministic(tmp_path):
    build_tokenizer(tmp_path / "a", 1024, eos_token_id=2)
    build_tokenizer(tmp_path / "b", 1024, eos_token_id=2)
    a = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    b = json.loads((tmp_path / "b" / "tokenizer.json").read_text())
    assert a["model"] == b["model"]


def test_too_small_or_outside_vocab_refused(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        build_tokenizer(tmp_path, 100)
    with pytest.raises(ValueError, match="outside vocab_size"):
        build_tokenizer(tmp_path, 1024, eos_token_id=5000)
