"""An offline tokenizer for tiny models: byte-level BPE trained on a fixed text.

No tokenizer files ship with transformers and the Hub may be unreachable, yet exporters and generation
tests want `AutoTokenizer.from_pretrained(model_dir)` to work. Byte-level BPE can encode any string, the
training text is fixed so the result is deterministic, and the special tokens are moved to exactly the ids
the model config names so generation stops and pads where the config says.
"""

from __future__ import annotations

import json
from pathlib import Path

BYTE_ALPHABET = 256
MAX_BPE_VOCAB = 512

# Original text, varied enough (prose, digits, code, punctuation) to give useful merges.
TRAINING_TEXT = """
Onboarding a new architecture starts with its configuration: how many layers, how wide each one is,
which attention it uses and whether experts share the work. A tiny copy keeps every kind of layer but
only a few of each, so an export and a comparison finish in seconds on an ordinary laptop.
The river ran past seven mills before noon; by evening the miller counted 1024 sacks of grain.
Numbers like 3.14159, 2718, 42 and 100000 appear in tables, prices and dates such as 2024-05-17.
def forward(self, hidden_states, attention_mask=None):
    residual = hidden_states
    hidden_states = self.norm(hidden_states)
    return residual + self.mlp(hidden_states)
for i in range(10): total += values[i] * weights[i]
Questions? Answers! Lists: apples, pears, plums; quotes "like this" and 'like that'.
Greedy decoding picks the most likely next token at every step, then feeds it back as input.
"""

SPECIAL_NAMES = {"pad": "<pad>", "bos": "<s>", "eos": "</s>"}
SHARED_NAME = "<|endoftext|>"  # used when the config gives bos, eos and/or pad the same id


def _first_id(v) -> int | None:
    if isinstance(v, list):
        v = v[0] if v else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _special_map(bos, eos, pad) -> dict[str, str | None]:
    """role -> token text; roles sharing an id share one token, roles without an id get none."""
    ids = {"bos": _first_id(bos), "eos": _first_id(eos), "pad": _first_id(pad)}
    by_id: dict[int, list[str]] = {}
    for role, i in ids.items():
        if i is not None:
            by_id.setdefault(i, []).append(role)
    names: dict[str, str | None] = {r: None for r in ids}
    for roles in by_id.values():
        text = SPECIAL_NAMES[roles[0]] if len(roles) == 1 else SHARED_NAME
        for r in roles:
            names[r] = text
    return names, {names[r]: i for r, i in ids.items() if i is not None}


def build_tokenizer(out_dir: Path, vocab_size: int, *, bos_token_id=None, eos_token_id=None,
                    pad_token_id=None, model_max_length: int = 2048):
    """Train, place special tokens at the configured ids, save; returns the PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    names, wanted_ids = _special_map(bos_token_id, eos_token_id, pad_token_id)
    specials = sorted(set(wanted_ids), key=lambda t: wanted_ids[t])
    pad_text = names["pad"] or names["eos"]
    if pad_text is None:  # batched generation needs some padding token even if the config names none
        pad_text = SPECIAL_NAMES["pad"]
        specials.append(pad_text)
    floor = BYTE_ALPHABET + len(specials) + 16
    if vocab_size < floor:
        raise ValueError(f"vocab_size {vocab_size} is too small for a byte-level tokenizer (needs >= {floor})")
    for text, i in wanted_ids.items():
        if i >= vocab_size:
            raise ValueError(f"special token id {i} ({text}) is outside vocab_size {vocab_size}")
    target = min(MAX_BPE_VOCAB, (vocab_size * 3) // 4) if vocab_size * 3 // 4 >= floor else floor

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=target, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TRAINING_TEXT] * 4, trainer=trainer)
    tok = Tokenizer.from_str(json.dumps(_place_specials(json.loads(tok.to_str()), wanted_ids)))

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=names["bos"], eos_token=names["eos"],
        pad_token=pad_text, padding_side="left", model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def _place_specials(data: dict, wanted: dict[str, int]) -> dict:
    """Swap ids inside the BPE vocab so each special token sits at its configured id.

    Merges refer to tokens by text, so permuting ids is safe; ids beyond the trained vocab are reached by
    padding with reserved tokens (which are never produced by encoding ordinary text).
    """
    vocab: dict[str, int] = data["model"]["vocab"]
    top = max(wanted.values(), default=-1)
    k = 0
    while len(vocab) <= top:
        name = f"<|reserved_{k}|>"
        k += 1
        if name not in vocab:
            vocab[name] = len(vocab)
            data["added_tokens"].append(_added(name, vocab[name]))
    by_id = {i: t for t, i in vocab.items()}
    for text, i in wanted.items():
        current, other = vocab[text], by_id[i]
        vocab[text], vocab[other] = i, current
        by_id[i], by_id[current] = text, other
    for entry in data["added_tokens"]:
        entry["id"] = vocab[entry["content"]]
    return data


def _added(text: str, i: int) -> dict:
    return {"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}
