"""The files of a new VeOmni package and its touch points, as text (the target writes them).

`__init__.py` follows the repository's registration (llama's for dense, qwen3_moe's for MoE: the fused
experts' LoRA targets and, where the base has one, the checkpoint converter); `parallel_plan.py` takes its
prefix from the HF model's real parameter names; the toy config starts from the real config.
"""

from __future__ import annotations

import json
import re

LICENSE = """# Copyright 2025 Bytedance Ltd. and/or its affiliates
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
"""
HEADS = ("ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "Model")


def init_py(pkg: str, prefix: str, classes: list[str], moe_prefix: str | None, converter: bool) -> str:
    """`classes`: head suffixes the generated module defines (ForCausalLM first)."""
    names = [f"{prefix}{c}" for c in HEADS if c in classes]
    imports = "".join(f"        {n},\n" for n in names)
    lines = [LICENSE]
    if moe_prefix is not None:
        lines.append("from ....lora.target_mapping import convert_fused_moe_lora_targets\n")
    lines.append("from ...loader import MODELING_REGISTRY\n\n")
    if moe_prefix is not None:
        for kind, pre in (("wrapped", f"{moe_prefix}."), ("model", "")):
            lines.append(f"""
def _convert_{pkg}_{kind}_lora_targets_to_parameters(_model, lora_modules, target_parameter_patterns):
    return convert_fused_moe_lora_targets(
        lora_modules,
        target_parameter_patterns,
        "{pre}layers.*.mlp.experts.gate_up_proj",
        "{pre}layers.*.mlp.experts.down_proj",
    )

""")
    lines.append(f"""
@MODELING_REGISTRY.register("{pkg}")
def register_{pkg}_modeling(architecture: str):
""")
    if converter:
        lines.append(f"""    from .checkpoint_tensor_converter import (
        convert_{pkg}_fqn_to_index_mapping,
        create_{pkg}_checkpoint_tensor_converter,
    )
""")
    lines.append(f"    from .generated.patched_modeling_{pkg}_gpu import (\n{imports}    )\n\n")
    if moe_prefix is not None:
        lines.append(f"    for model_cls in ({', '.join(names)}):\n")
        if converter:
            lines.append(f"        model_cls._create_checkpoint_tensor_converter = staticmethod("
                         f"create_{pkg}_checkpoint_tensor_converter)\n"
                         f"        model_cls._convert_fqn_to_index_mapping = staticmethod("
                         f"convert_{pkg}_fqn_to_index_mapping)\n")
        lines.append(f"        model_cls._convert_lora_targets_to_parameters = staticmethod(\n"
                     f"            _convert_{pkg}_wrapped_lora_targets_to_parameters\n        )\n")
        if f"{prefix}Model" in names:
            lines.append(f"    {prefix}Model._convert_lora_targets_to_parameters = staticmethod(\n"
                         f"        _convert_{pkg}_model_lora_targets_to_parameters\n    )\n")
        lines.append("\n")
    first = True
    for c in HEADS:
        if c in classes and c != "ForCausalLM":
            lines.append(f"    {'if' if first else 'elif'} \"{c}\" in architecture:\n        return {prefix}{c}\n")
            first = False
    if first:
        lines.append(f"    return {prefix}ForCausalLM\n")
    else:
        lines.append(f"    return {prefix}ForCausalLM\n")
    text = "".join(lines)
    # ForCausalLM first: "Model" is a substring of every head's name, so it must be tested last.
    return re.sub(r"\n{4,}", "\n\n\n", text)


def parallel_plan_py(prefix_path: str, params: list[str]) -> str:
    """`prefix_path`: the experts module path with `*` for the layer, e.g. model.layers.*.mlp.experts."""
    entries = "".join(f'        "{prefix_path}.{p}": Shard(0),\n' for p in params)
    return (LICENSE + "\nfrom torch.distributed._tensor import Shard\n\nfrom ....distributed.parallel_plan import "
            "ParallelPlan\n\n\ndef get_parallel_plan():\n    ep_plan = {\n" + entries + "    }\n"
            "    parallel_plan = ParallelPlan(\n        extra_parallel_plan={\n            \"ep\": ep_plan,\n"
            "        }\n    )\n    return parallel_plan\n")


# Serialization defaults of PretrainedConfig.to_dict(): not the model's, noise in a toy.
NOISE = ("_name_or_path", "auto_map", "quantization_config", "id2label", "label2id", "output_hidden_states",
         "return_dict", "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "transformers_version")


def toy_config(raw: dict, architecture: str, layers: int = 4, experts: int = 16) -> str:
    """The real config with few layers (and experts), as the repository's toys are."""
    cfg = {k: v for k, v in raw.items() if k not in NOISE and not (v is None and k in ("dtype", "architectures"))}
    cfg["architectures"] = cfg.get("architectures") or [architecture]
    for k in ("num_hidden_layers",):
        if isinstance(cfg.get(k), int):
            cfg[k] = min(cfg[k], layers)
    for k in ("num_experts", "num_local_experts", "n_routed_experts"):
        if isinstance(cfg.get(k), int):
            cfg[k] = min(cfg[k], experts)
    if isinstance(cfg.get("layer_types"), list):
        cfg["layer_types"] = cfg["layer_types"][: cfg.get("num_hidden_layers", layers)]
    return json.dumps(cfg, indent=2) + "\n"


def toy_readme(display: str, source: str, moe: bool) -> str:
    what = "four decoder layers and at most sixteen experts" if moe else "four decoder layers"
    return (f"# {display} Toy Config\n\nBased on the configuration of {source}, reduced to {what} so "
            "CPU tests build it quickly. Every other field is the released model's, so the toy has the same "
            "modules and routing as the real model.\n")


def add_import(text: str, pkg: str) -> str:
    """veomni/models/transformers/__init__.py: the package in the import tuple and in __all__, sorted."""
    m = re.search(r"from \. import \(\n(.*?)\)", text, re.S)
    if not m:
        raise ValueError("no `from . import (...)` block")
    names = sorted({n.strip().rstrip(",") for n in m.group(1).splitlines() if n.strip()} | {pkg})
    text = text[:m.start(1)] + "".join(f"    {n},\n" for n in names) + text[m.end(1):]
    a = re.search(r"__all__ = \[\n(.*?)\]", text, re.S)
    if a and f'"{pkg}"' not in a.group(1):
        text = text[:a.end(1)] + f'    "{pkg}",\n' + text[a.end(1):]
    return text


def add_mapping_entry(text: str, base_key: str, key: str) -> str | None:
    """A `"<base>": <value>,` dict line duplicated for `key` right after it; None when the base has none."""
    if re.search(rf'^\s*"{re.escape(key)}":', text, re.M):
        return text
    m = re.search(rf'^(\s*)"{re.escape(base_key)}": (.+),\n', text, re.M)
    if not m:
        return None
    line = f'{m.group(1)}"{key}": {m.group(2)},\n'
    return text[:m.end()] + line + text[m.end():]


def add_registry_test(text: str, toy_dir: str) -> str | None:
    """tests/models/test_model_registry.py: the toy checked as an HF config whose model VeOmni registers."""
    m = re.search(r"local_test_cases = \[\n(.*?)\n\]", text, re.S)
    if not m:
        return None
    if f"./{toy_dir}\"" in m.group(1):
        return text
    row = f'    pytest.param("./{toy_dir}", True, False, ["config", "model"], ["model"]),'
    return text[:m.end(1)] + "\n" + row + text[m.end(1):]
