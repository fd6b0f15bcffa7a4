"""Read Hugging Face modeling sources (the host's transformers) to compare module structure.

Only text is read, nothing imported from the model: the sandbox, with VeOmni's own transformers,
is where the derived package is proved; this guides which base and which patches to keep.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_HEAD = re.compile(r"^class (\w+?)(ForCausalLM|ForSequenceClassification|ForTokenClassification|"
                   r"ForQuestionAnswering|Model)\(", re.M)


def family(model_type: str) -> str:
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    return model_type_to_module_name(model_type)


@lru_cache(maxsize=256)
def source(name: str) -> str:
    """The modeling file of a model_type or transformers module name, or "" when there is none."""
    import transformers

    root = Path(transformers.__file__).parent / "models"
    for mod in dict.fromkeys([name, family(name)]):
        f = root / mod / f"modeling_{mod}.py"
        if f.is_file():
            return f.read_text()
    return ""


def prefix_of(name: str) -> str:
    m = re.search(r"^class (\w+)ForCausalLM\(", source(name), re.M)
    return m.group(1) if m else ""


def heads(src: str, prefix: str) -> list[str]:
    return [h for p, h in _HEAD.findall(src) if p == prefix]


def config_fields(model_type: str) -> set[str]:
    """Attribute names a config class declares or aliases (attribute_map), from configuration_<mod>.py."""
    import transformers

    mod = family(model_type)
    f = Path(transformers.__file__).parent / "models" / mod / f"configuration_{mod}.py"
    if not f.is_file():
        return set()
    text = f.read_text()
    return set(re.findall(r"self\.(\w+)\s*=", text)) | set(re.findall(r"^\s+(\w+):\s*[\w\[\]| .]+(?:=|$)", text, re.M)) \
        | set(re.findall(r"[\"'](\w+)[\"']\s*:\s*[\"']\w+[\"']", text))


def experts_layout(src: str, prefix: str) -> dict | None:
    """Where the fused routed experts sit and what they hold: {"path": "model.layers.*.mlp.experts",
    "params": ["gate_up_proj", "down_proj"]}, or None when the model has no `<Prefix>Experts` module.
    Read from the class bodies: CausalLM.model -> Model.layers -> DecoderLayer.<attr> (the sparse block)
    -> block.<attr> (the experts) -> its nn.Parameter attributes."""
    classes = dict(re.findall(r"^class (\w+)\(.*?\):\n(.*?)(?=^class |\Z)", src, re.M | re.S))
    experts_cls = f"{prefix}Experts"
    if experts_cls not in classes:
        return None
    params = re.findall(r"self\.(\w+)\s*=\s*nn\.Parameter\(", classes[experts_cls])

    def holder(cls_body: str, child: str) -> str | None:
        m = re.search(rf"self\.(\w+)\s*=\s*{child}\(", cls_body)
        return m.group(1) if m else None

    block = next((c for c, b in classes.items() if holder(b, experts_cls) and c != experts_cls), None)
    if block is None:
        return None
    exp_attr = holder(classes[block], experts_cls)
    layer = next((c for c, b in classes.items() if c.endswith("DecoderLayer") and holder(b, block)), None)
    mlp_attr = holder(classes.get(layer, ""), block) if layer else None
    model_attr = holder(classes.get(f"{prefix}ForCausalLM", ""), f"{prefix}Model") or "model"
    if not (exp_attr and mlp_attr and params):
        return None
    return {"path": f"{model_attr}.layers.*.{mlp_attr}.{exp_attr}", "params": params}
