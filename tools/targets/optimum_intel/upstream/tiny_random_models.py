# Copyright 2026 The HuggingFace Team. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Tiny random causal LMs built from the configs in tiny_model_configs/, for the tests and for the Hub.

Each `tiny_model_configs/<model_type>.json` holds the Hub id the tests name the model by (in
utils_tests.HUB_MODEL_NAMES), a seed, and the config. `with_local_fallbacks(MODEL_NAMES)` replaces a
Hub id that is not in the local Hub cache by a directory built from its config, so the tests also
run offline and before the model is uploaded. As a script, it builds one model and, with --push and
Hub credentials (`huggingface-cli login` or HF_TOKEN), uploads it under its Hub id:

    python tests/openvino/tiny_random_models.py <model_type> [--output DIR] [--push]
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path


CONFIG_DIR = Path(__file__).resolve().parent / "tiny_model_configs"
TOKENIZER_TEXT = (
    "The quick brown fox jumps over the lazy dog. This is a sample output of a tiny model. "
    "My name is Arthur and I live in a small town. Today is a nice day and I am longer than you. "
    "A cat sat on the mat, then it ran to the garden to play with 1, 2, 3 or 42 red balls! "
)


def load_entry(model_type):
    """{"hub_id", "seed", "config"} of `model_type`, or None when it has no config here."""
    path = CONFIG_DIR / f"{model_type}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _save_tokenizer(model_config, output_dir):
    """A byte-level BPE tokenizer trained on a fixed text, its special tokens at the ids the config uses."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # since transformers 5 a config has only the special tokens its model defines (RoCBert: no bos/eos)
    eos_id = getattr(model_config, "eos_token_id", None)
    eos_id = eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id
    pad_id = getattr(model_config, "pad_token_id", None)
    token_ids = {"<s>": getattr(model_config, "bos_token_id", None), "</s>": eos_id}
    pad_token = next((t for t, i in token_ids.items() if i is not None and i == pad_id), "<pad>")
    token_ids.setdefault(pad_token, pad_id)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=max(300, min(model_config.vocab_size // 2, 384)),
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([TOKENIZER_TEXT] * 4, trainer=trainer)
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
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)), bos_token="<s>", eos_token="</s>", pad_token=pad_token
    ).save_pretrained(output_dir)


def build(model_type, output_dir):
    """Build the tiny random model of `model_type` (weights drawn with its seed) and its tokenizer into `output_dir`."""
    import torch
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    entry = load_entry(model_type)
    if entry is None:
        raise FileNotFoundError(f"no {CONFIG_DIR / (model_type + '.json')}")
    config = {k: v for k, v in entry["config"].items() if k != "model_type"}
    checkpoint_config = AutoConfig.for_model(entry["config"].get("model_type", model_type), **config)
    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(checkpoint_config)]
    # a composite family's causal LM is built from its text sub-config, as from_pretrained builds it
    model_config = checkpoint_config.get_text_config()
    if not isinstance(model_config, model_class.config_class):
        model_config = checkpoint_config
    torch.manual_seed(entry.get("seed", 42))
    model = model_class._from_config(model_config).to(torch.float32)
    with torch.no_grad():
        # Some families create their MoE router with torch.zeros and leave it to the checkpoint: a random
        # model would then tie every expert, and which expert wins would be up to the runtime.
        for param in model.parameters():
            if param.dim() == 2 and not param.any():
                param.normal_(0.0, 0.02)
    model.save_pretrained(output_dir)
    if model_config is not checkpoint_config:  # AutoConfig reads the checkpoint's composite config back
        checkpoint_config.save_pretrained(output_dir)
    _save_tokenizer(model_config, output_dir)
    return str(output_dir)


def build_cached(model_type):
    """The model built once under the system temp dir, rebuilt when its config, seed or transformers changes."""
    import transformers

    entry = load_entry(model_type)
    output_dir = Path(tempfile.gettempdir()) / f"optimum_intel_tiny_random_{model_type}"
    stamp = json.loads(json.dumps({"entry": entry, "transformers": transformers.__version__, "version": 1}))

    def is_built(directory):
        try:
            return json.loads((directory / "tiny_random_model.json").read_text()) == stamp
        except (OSError, ValueError):
            return False

    if is_built(output_dir):
        return str(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{output_dir.name}.", dir=output_dir.parent))
    build(model_type, build_dir)
    (build_dir / "tiny_random_model.json").write_text(json.dumps(stamp))
    if not is_built(output_dir):  # else another process finished first
        shutil.rmtree(output_dir, ignore_errors=True)
        try:
            build_dir.rename(output_dir)
        except OSError:  # lost a race with another process building it
            pass
    shutil.rmtree(build_dir, ignore_errors=True)
    return str(output_dir)


def with_local_fallbacks(model_names):
    """`model_names` with each Hub id that has a config here, and is not a local (cached) directory yet,
    replaced by the directory of the same tiny model built locally."""
    out = dict(model_names)
    for path in sorted(CONFIG_DIR.glob("*.json")):
        model_type = path.stem
        entry = load_entry(model_type)
        if out.get(model_type) == entry["hub_id"] and not Path(entry["hub_id"]).is_dir():
            out[model_type] = build_cached(model_type)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_type", help="a name in tiny_model_configs/ (without .json)")
    parser.add_argument("--output", help="directory to build into (default: the Hub id's name)")
    parser.add_argument("--push", action="store_true", help="upload to the Hub id (needs Hub credentials)")
    args = parser.parse_args()
    entry = load_entry(args.model_type)
    if entry is None:
        parser.error(f"{args.model_type}: no {CONFIG_DIR.name}/{args.model_type}.json")
    output = Path(args.output or entry["hub_id"].split("/")[-1])
    build(args.model_type, output)
    print(f"built {output}")
    if args.push:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(entry["hub_id"], exist_ok=True)
        api.upload_folder(folder_path=str(output), repo_id=entry["hub_id"],
                          commit_message=f"Tiny random {args.model_type} for optimum-intel tests")
        print(f"uploaded to https://huggingface.co/{entry['hub_id']}")


if __name__ == "__main__":
    main()
