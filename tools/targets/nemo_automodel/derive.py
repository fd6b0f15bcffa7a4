"""A model directory derived from the closest implementation in the workspace.

The base's files are copied with its names replaced (class prefix, package, transformers config
module), then each structural difference the plan found is applied as an edit anchored on the base's
own text. An anchor that is not there exactly as expected stops the derivation with the reason: the base
has moved on and the difference goes to the implementer instead of being written blind.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

MODELS = "nemo_automodel/components/models"


class DeriveError(RuntimeError):
    """An edit's anchor is missing: the message names the file, the edit and the anchor."""


@dataclass
class Names:
    base_type: str  # qwen3_moe
    base_prefix: str  # Qwen3Moe
    new_type: str  # qwen2_moe
    new_prefix: str  # Qwen2Moe


@dataclass
class Derived:
    files: dict[str, str] = field(default_factory=dict)  # workspace-relative path -> text
    notes: list[str] = field(default_factory=list)


def prefix_of(arch: str) -> str:
    return re.sub(r"For(CausalLM|ConditionalGeneration)$", "", arch)


def _words(prefix: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]*\d*(?:_\d+)?|\d+", prefix) or [prefix]


def _rename(text: str, n: Names) -> str:
    text = text.replace(n.base_prefix, n.new_prefix).replace(n.base_type, n.new_type)
    # Prose spells the name with separators ("Qwen3-MoE", "Qwen3 MoE"): rename those too, keeping the separator.
    old, new = _words(n.base_prefix), _words(n.new_prefix)
    if len(old) > 1 and len(old) == len(new):
        pattern = re.compile("([-_ ]?)".join(f"({re.escape(w)})" for w in old), re.I)

        def sub(m: re.Match) -> str:
            out = []
            for i, word in enumerate(new):
                seen = m.group(2 * i + 1)
                out.append(seen if seen.lower() == word.lower() else word)  # keep "MoE" as the text spells it
                if i < len(new) - 1:
                    out.append(m.group(2 * i + 2))
            return "".join(out)

        text = pattern.sub(sub, text)
    return text


def _replace_once(text: str, old: str, new: str, where: str, what: str) -> str:
    count = text.count(old)
    if count != 1:
        raise DeriveError(f"{where}: edit '{what}' expects its anchor once, found {count}: {old.strip()[:80]!r}")
    return text.replace(old, new)


# -- edits on a base whose attention has per-head q/k RMSNorm and one bias switch ----------------------
def drop_qk_norm(files: dict[str, str], layers: str) -> None:
    src = files[layers]
    src = _replace_once(src, "        # Per-head RMSNorm\n        self.q_norm = initialize_rms_norm_module(",
                        "        self.q_norm = initialize_rms_norm_module(", layers, "drop qk-norm")
    src = re.sub(r"        self\.[qk]_norm = initialize_rms_norm_module\([^\n]*\n", "", src)
    src = _replace_once(src, "        # Per-head RMSNorm\n        q = self.q_norm(q)\n        k = self.k_norm(k)\n\n", "",
                        layers, "drop qk-norm forward")
    src = _replace_once(src, "        for norm in (self.q_norm, self.k_norm):\n            norm.reset_parameters()\n", "",
                        layers, "drop qk-norm init")
    if "q_norm" in src or "k_norm" in src:
        raise DeriveError(f"{layers}: q_norm/k_norm still referenced after removing them")
    files[layers] = src


def set_projection_bias(files: dict[str, str], layers: str, qkv: str, out: str) -> None:
    """`qkv`/`out`: the transformers expression of the bias (a config field name, "True" or "False")."""
    src = files[layers]
    expr = lambda v: v if v in ("True", "False") else f"config.{v}"  # noqa: E731
    anchor = '        attention_bias = getattr(config, "attention_bias", False)\n'
    src = _replace_once(src, anchor, f"        qkv_bias = {expr(qkv)}\n        out_bias = {expr(out)}\n",
                        layers, "projection bias")
    head, sep, tail = src.partition("        self.o_proj = initialize_linear_module(")
    if not sep or head.count("attention_bias, dtype=dtype") != 3 or tail.count("attention_bias, dtype=dtype") < 1:
        raise DeriveError(f"{layers}: q/k/v/o projections not laid out as expected for the bias edit")
    files[layers] = (head.replace("attention_bias, dtype=dtype", "qkv_bias, dtype=dtype") + sep
                     + tail.replace("attention_bias, dtype=dtype", "out_bias, dtype=dtype", 1))


def add_shared_expert(files: dict[str, str], model: str, adapter: str, hf_name: str, gated: bool) -> None:
    """One shared expert of width `shared_expert_intermediate_size`, optionally behind a sigmoid gate
    (NeMo's MoE layer implements both); the adapter renames transformers' `<hf_name>` explicitly."""
    src = files[model]
    src = _replace_once(
        src, "            n_shared_experts=0,\n",
        '            n_shared_experts=1 if getattr(config, "shared_expert_intermediate_size", 0) else 0,\n'
        '            shared_expert_inter_dim=getattr(config, "shared_expert_intermediate_size", None),\n'
        f"            shared_expert_gate={gated},\n"
        '            shared_expert_activation="swiglu",\n', model, "shared expert")
    files[model] = src
    if hf_name == "shared_experts":
        return
    src = files[adapter]
    hf, native = f".mlp.{hf_name}.", ".mlp.shared_experts."
    src = _replace_once(
        src, "        return self._from_hf_w_merged_experts(hf_state_dict, device_mesh)\n",
        f"        # transformers names the shared expert {hf_name!r}; the MoE layer holds it as 'shared_experts'.\n"
        f"        hf_state_dict = {{k.replace({hf!r}, {native!r}): v for k, v in hf_state_dict.items()}}\n"
        "        return self._from_hf_w_merged_experts(hf_state_dict, device_mesh)\n", adapter, "shared expert from_hf")
    tail_anchor = ("            result = [(fqn, tensor)]\n\n        if exclude_key_regex:\n")
    src = _replace_once(
        src, tail_anchor,
        "            result = [(fqn, tensor)]\n\n"
        f"        result = [(k.replace({native!r}, {hf!r}), v) for k, v in result]\n"
        "        if exclude_key_regex:\n", adapter, "shared expert to_hf")
    files[adapter] = src


def derive(workspace: Path, names: Names, edits: list[tuple[str, dict]]) -> Derived:
    """Copy `<base_type>/` as `<new_type>/` with renames, then apply `edits` [(name, params)]."""
    base_dir = workspace / MODELS / names.base_type
    if not base_dir.is_dir():
        raise DeriveError(f"{MODELS}/{names.base_type} is not in the workspace")
    out = Derived()
    for path in sorted(base_dir.glob("*.py")):
        rel = f"{MODELS}/{names.new_type}/{path.name}"
        out.files[rel] = _rename(path.read_text(encoding="utf-8"), names)
    layers, model = f"{MODELS}/{names.new_type}/layers.py", f"{MODELS}/{names.new_type}/model.py"
    adapter = f"{MODELS}/{names.new_type}/state_dict_adapter.py"
    for name, params in edits:
        missing = [f for f in (layers, model, adapter) if f not in out.files]
        if missing:
            raise DeriveError(f"{names.base_type} has no {', '.join(Path(f).name for f in missing)}: edits need them")
        if name == "drop_qk_norm":
            drop_qk_norm(out.files, layers)
        elif name == "projection_bias":
            set_projection_bias(out.files, layers, params["qkv"], params["out"])
        elif name == "shared_expert":
            add_shared_expert(out.files, model, adapter, params["hf_name"], params["gated"])
        else:
            raise DeriveError(f"no edit named {name!r}")
        out.notes.append(f"{name}: {params.get('evidence', '')}".strip())
    for rel, text in out.files.items():  # an edit that leaves broken Python is a failed derivation
        try:
            ast.parse(text)
        except SyntaxError as exc:
            raise DeriveError(f"{rel}: the edits leave invalid Python (line {exc.lineno}: {exc.msg})") from None
    return out


def write(workspace: Path, derived: Derived) -> list[str]:
    for rel, text in derived.files.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(derived.files)
