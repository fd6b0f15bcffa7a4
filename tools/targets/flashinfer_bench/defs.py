"""Kernel Definition JSON for FlashInfer-Bench: a new Definition for a name the dataset lacks.

A new Definition is made from the closest existing one of the same op family (same name with other
numbers, same page size): its axes, inputs, outputs and reference are kept, the constant axes are set
from the new name, and the reference's constant asserts follow. When the family has no member in the
dataset, a small template of our own covers the simple ops; anything else is left to an implementer.
"""

from __future__ import annotations

import copy
import re

from tools.targets.flashinfer_bench.names import parse_name
from tools.targets.flashinfer_bench.templates import OWN_TEMPLATES


def derive(name: str, dataset: dict[str, dict], model_id: str, parallel: dict) -> tuple[dict | None, str]:
    """(definition, how) for a name missing from `dataset`; (None, why) when no template applies."""
    parsed = parse_name(name)
    if parsed is None:
        return None, "no template: the name matches no known op family"
    family, consts, key = parsed
    siblings = sorted(n for n in dataset if (parse_name(n) or ("", {}, ""))[2] == key)
    if siblings:
        base = dataset[siblings[0]]
        missing = set(consts) - {k for k, v in base["axes"].items() if v.get("type") == "const"}
        if not missing:
            return _from_sibling(base, name, consts, model_id, parallel), f"derived from {siblings[0]}"
    made = OWN_TEMPLATES[family](name, consts, model_id) if family in OWN_TEMPLATES else None
    if made:
        return made, f"own {family} template"
    return None, f"no template for op family {family} and no {key} sibling in the dataset"


def _from_sibling(base: dict, name: str, consts: dict, model_id: str, parallel: dict) -> dict:
    d = copy.deepcopy(base)
    d["name"] = name
    ref = d["reference"]
    for axis, value in consts.items():
        old = d["axes"][axis]["value"]
        d["axes"][axis]["value"] = value
        ref = re.sub(rf"(assert\s+{axis}\s*==\s*){old}\b", rf"\g<1>{value}", ref)
    d["reference"] = ref
    tags = [t for t in d.get("tags", []) if not t.startswith(("model:", "status:", "tp:", "ep:"))]
    extra = [f"tp:{parallel['tp']}"] if any(t.startswith("tp:") for t in base.get("tags", [])) else []
    extra += [f"ep:{parallel['ep']}"] if any(t.startswith("ep:") for t in base.get("tags", [])) else []
    d["tags"] = ["status:unverified", f"model:{model_id}", *tags, *extra]
    first = (base.get("description") or "").split(". ")[0].rstrip(".")
    d["description"] = f"{first}. Sizes for {model_id}; derived from {base['name']}."
    return d
