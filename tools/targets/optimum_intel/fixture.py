"""Source of the local tiny-model test fixtures written into optimum-intel's utils_tests.py.

One shared helper (`_create_tiny_random_causal_lm`: a tiny random model plus an offline byte-level
tokenizer, cached by config) is written once; each onboarded model then gets a few-line
`_create_tiny_<type>_model()` calling it, formatted the way black would, so its tests need no Hub.
"""

from __future__ import annotations

import re

from tools.source.literals import render

FIXTURE_HELPER = "_create_tiny_random_causal_lm"
# what the fixture helper uses from utils_tests' own imports
FIXTURE_NEEDS = {"json", "tempfile", "Path", "torch"}


def fixture_function_name(model_type: str) -> str:
    return f"_create_tiny_{re.sub(r'[^0-9A-Za-z_]', '_', model_type)}_model"


# Written once into utils_tests.py; each model's fixture is then a few lines calling it.
FIXTURE_HELPER_SOURCE = '''
def _create_tiny_random_causal_lm(model_type, config, seed=42):
    """Build a tiny random causal LM of `model_type` from `config`, with a local byte-level BPE tokenizer,
    so that its tests need no Hub checkpoint. Returns the model directory.

    The result is cached under the system temp dir and reused only if it was built from the same config,
    seed and transformers version (recorded in fixture.json); anything else rebuilds it.
    """
    import shutil

    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig, PreTrainedTokenizerFast

    output_dir = Path(tempfile.gettempdir()) / f"optimum_intel_tiny_random_{model_type}"
    stamp = {"model_type": model_type, "config": config, "seed": seed, "transformers": transformers.__version__,
             "fixture": 2}
    stamp = json.loads(json.dumps(stamp))  # compared with what fixture.json reads back

    def is_built(directory):
        try:
            return json.loads((directory / "fixture.json").read_text()) == stamp
        except (OSError, ValueError):
            return False

    if is_built(output_dir):
        return str(output_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{output_dir.name}.", dir=output_dir.parent))
    checkpoint_config = AutoConfig.for_model(model_type, **{k: v for k, v in config.items() if k != "model_type"})
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(checkpoint_config)]
    # a composite family's causal LM is built from its text sub-config, as from_pretrained builds it
    model_config = checkpoint_config.get_text_config()
    if not isinstance(model_config, model_class.config_class):
        model_config = checkpoint_config
    torch.manual_seed(seed)
    model = model_class._from_config(model_config).to(torch.float32)
    with torch.no_grad():
        # Some families create their MoE router with torch.zeros and leave it to the checkpoint: a random
        # model would then tie every expert, and which expert wins would be up to the runtime.
        for param in model.parameters():
            if param.dim() == 2 and not param.any():
                param.normal_(0.0, 0.02)
    model.save_pretrained(build_dir)
    if model_config is not checkpoint_config:  # the sub-config saved; AutoConfig reads the checkpoint's back
        checkpoint_config.save_pretrained(build_dir)

    eos_id = model_config.eos_token_id
    eos_id = eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id
    token_ids = {"<s>": model_config.bos_token_id, "</s>": eos_id}
    pad_token = next((t for t, i in token_ids.items() if i is not None and i == model_config.pad_token_id), "<pad>")
    token_ids.setdefault(pad_token, model_config.pad_token_id)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(300, min(model_config.vocab_size // 2, 384)),
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = (
        "The quick brown fox jumps over the lazy dog. This is a sample output of a tiny model. "
        "My name is Arthur and I live in a small town. Today is a nice day and I am longer than you. "
        "A cat sat on the mat, then it ran to the garden to play with 1, 2, 3 or 42 red balls! "
    )
    tokenizer.train_from_iterator([text] * 4, trainer=trainer)
    # give the special tokens the ids the model config uses (BPE merges refer to tokens, not ids)
    data = json.loads(tokenizer.to_str())
    vocab, assigned = data["model"]["vocab"], set()
    for token, wanted in token_ids.items():
        if isinstance(wanted, int) and 0 <= wanted < len(vocab) and wanted not in assigned:
            other = next(t for t, i in vocab.items() if i == wanted)
            vocab[token], vocab[other] = wanted, vocab[token]
            assigned.add(wanted)
    for added in data["added_tokens"]:
        added["id"] = vocab[added["content"]]
    if len(vocab) > model_config.vocab_size:
        raise ValueError(f"vocab_size {model_config.vocab_size} is too small for a byte-level tokenizer")
    tokenizer = Tokenizer.from_str(json.dumps(data))
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token=pad_token
    ).save_pretrained(build_dir)
    (build_dir / "fixture.json").write_text(json.dumps(stamp))

    if not is_built(output_dir):  # else another process finished first
        shutil.rmtree(output_dir, ignore_errors=True)
        try:
            build_dir.rename(output_dir)
        except OSError:  # lost a race with another process building it
            pass
    shutil.rmtree(build_dir, ignore_errors=True)
    return str(output_dir)
'''


def _py_literal(value, indent: int, prefix: int = 0, width: int = 119) -> str:
    """Black-like: inline when the line fits, else one entry per line (`indent`: the line's indentation)."""
    inline = render(value)
    if indent + prefix + len(inline) + 1 <= width or not isinstance(value, (dict, list)) or not value:
        return inline
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        rows = [f"{pad}{render(k)}: {_py_literal(v, indent + 4, len(render(k)) + 2)}," for k, v in value.items()]
        return "{\n" + "\n".join(rows) + "\n" + " " * indent + "}"
    return "[\n" + "\n".join(f"{pad}{_py_literal(v, indent + 4)}," for v in value) + "\n" + " " * indent + "]"


def fixture_function_source(model_type: str, display_name: str, config: dict) -> str:
    config = {k: v for k, v in config.items() if k != "model_type"}
    return (f"def {fixture_function_name(model_type)}():\n"
            f'    """Tiny random {display_name}, built locally so its tests run without the Hub."""\n'
            f'    return {FIXTURE_HELPER}(\n        "{model_type}",\n        {_py_literal(config, 8)},\n    )\n')
