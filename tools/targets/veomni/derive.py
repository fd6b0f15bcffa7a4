"""Derive a new package's patch-generation config from the closest package's.

The base config is renamed (class prefix, module and package names), then each patch is kept only where
it is known to modify the same code: an override of a method the new model's Hugging Face class defines
differently from the base's is dropped (the generated file then keeps Hugging Face's own method, correct
but without VeOmni's fused kernel for it) and reported, so an implementer can port it. Config fields the
new model names differently (OLMoE's experts read `intermediate_size`, Qwen3-MoE's `moe_intermediate_size`)
are remapped. The generated modeling file itself is never written here: patchgen makes it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Callable

# Same meaning, different field names across MoE families: first present wins.
ALIASES = {
    "moe_intermediate_size": ("intermediate_size",),
    "num_experts": ("num_local_experts", "n_routed_experts"),
    "num_local_experts": ("num_experts", "n_routed_experts"),
    "n_routed_experts": ("num_experts", "num_local_experts"),
}
_PATCH_KINDS = {"override_method", "replace_class", "replace_function"}
# Names of one quantity (config classes alias them through attribute_map): equal when comparing code.
SYNONYMS = re.compile(r"config\.(?:num_local_experts|n_routed_experts|num_experts)\b")


@dataclass
class Names:
    base_pkg: str
    base_family: str
    base_prefix: str
    pkg: str
    family: str
    prefix: str

    def rename(self, text: str) -> str:
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(self.base_prefix)}(?=[A-Z_(.\"' ]|$)", self.prefix, text)
        text = text.replace(f"modeling_{self.base_family}", f"modeling_{self.family}")
        text = text.replace(f"models.{self.base_family}.", f"models.{self.family}.")
        text = text.replace(f"transformers.{self.base_pkg}.", f"transformers.{self.pkg}.")
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(self.base_pkg)}_", f"{self.pkg}_", text)
        return text


@dataclass
class Derived:
    text: str
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "Cls.method: why"
    remapped: dict[str, str] = field(default_factory=dict)


def _patches(tree: ast.Module):
    """(node, kind, target) for each top-level function/class decorated by config.<patch kind>("...")."""
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for dec in node.decorator_list:
            if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr in _PATCH_KINDS
                    and dec.args and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str)):
                yield node, dec, dec.func.attr, dec.args[0].value


def hf_defs(source: str) -> dict[str, str]:
    """'Cls.method' / 'Cls' / 'function' -> normalized source (no docstrings) of a modeling file."""
    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = _norm(node)
        elif isinstance(node, ast.ClassDef):
            out[node.name] = _norm(node)
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{node.name}.{item.name}"] = _norm(item)
    return out


def _norm(node) -> str:
    node = ast.parse(ast.unparse(node)).body[0]  # a copy
    for n in ast.walk(node):
        if isinstance(n, ast.arg):
            n.annotation = None  # `config: OlmoeConfig` and `config` are the same code
        body = getattr(n, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            n.body = body[1:] or [ast.Pass()]
    return SYNONYMS.sub("config.num_experts", ast.unparse(node))


def derive_config(base_text: str, names: Names, base_src: str, new_src: str, new_fields: set[str],
                  remap_ok: Callable[[str], bool] | None = None) -> Derived:
    """The base config renamed, with patches kept only where the new model's HF code matches the base's."""
    base_defs = {names.rename(k): names.rename(v) for k, v in hf_defs(base_src).items()}
    new_defs = hf_defs(new_src)
    remapped = {}
    for attr in sorted(set(re.findall(r"config\.(\w+)", base_text))):
        if attr in new_fields or attr not in ALIASES:
            continue
        alt = next((a for a in ALIASES[attr] if a in new_fields), None)
        if alt:
            remapped[attr] = alt
    text = names.rename(base_text)
    for attr, alt in remapped.items():
        text = re.sub(rf"config\.{attr}\b", f"config.{alt}", text)
        base_defs = {k: re.sub(rf"config\.{attr}\b", f"config.{alt}", v) for k, v in base_defs.items()}
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    drop_spans, kept, dropped = [], [], []
    for node, dec, kind, target in _patches(tree):
        cls = target.split(".")[0]
        why = None
        if kind == "replace_function":
            if target not in new_defs:
                why = "function not in the new modeling file"
            elif base_defs.get(target) != new_defs[target]:
                why = "the new model's function differs from the base's"
        elif cls not in new_defs:
            why = f"class {cls} not in the new modeling file"
        elif kind == "replace_class":
            if base_defs.get(target) != new_defs[target]:
                why = "the new model's class differs from the base's"
        elif target in new_defs and base_defs.get(target) != new_defs[target]:
            why = "the new model's method differs from the base's"
        if why:
            start = min([dec.lineno] + [d.lineno for d in node.decorator_list]) - 1
            while start > 0 and lines[start - 1].lstrip().startswith("#") and not lines[start - 1].startswith("# ──"):
                start -= 1
            drop_spans.append((start, node.end_lineno))
            dropped.append(f"{target}: {why}")
        else:
            kept.append(target)
    for start, end in sorted(drop_spans, reverse=True):
        del lines[start:end]
    out = re.sub(r"\n{4,}", "\n\n\n", "".join(lines))
    return Derived(out, kept, dropped, remapped)
