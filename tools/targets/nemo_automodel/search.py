"""The closest implementation in the workspace, and what differs from it.

Every registered architecture whose transformers source is known is a possible base. Its structure is
compared with the new model's (features.structure), the differences that matter for this checkpoint are
kept, and each is either an edit the deriver knows (with the base's anchors checked by a dry run) or a
difference handed to the implementer with its evidence line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tools.targets.base import Candidate
from tools.targets.nemo_automodel import features as F
from tools.targets.nemo_automodel.derive import DeriveError, Names, derive, prefix_of
from tools.targets.nemo_automodel.registry import MODELS, arch_mapping, model_dirs


@dataclass
class Match:
    base_dir: str
    base_arch: str
    base_type: str
    module: str
    cls: str
    diffs: dict = field(default_factory=dict)  # feature -> (base, new, evidence)
    edits: list = field(default_factory=list)  # [(edit, params)]
    open: list = field(default_factory=list)  # differences no edit covers, as sentences
    score: float = 0.0


def arch_of(analysis: dict) -> str | None:
    raw = analysis.get("raw_text_config") or {}
    archs = analysis.get("architectures") or raw.get("architectures") or []
    if archs:
        return archs[0]
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(analysis["model_type"])


def _hf_type_of(arch: str) -> str | None:
    from transformers.models.auto import modeling_auto as m

    for table in (m.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, m.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES):
        for model_type, name in table.items():
            if name == arch:
                return model_type
    return None


def _relevant(diffs: dict, raw: dict, kind: str) -> dict:
    out = dict(diffs)
    uses_sliding = bool(raw.get("use_sliding_window")) or "sliding_attention" in (raw.get("layer_types") or [])
    if "sliding_window_layers" in out and not uses_sliding:
        out.pop("sliding_window_layers")  # in transformers' code, off in this checkpoint
    if kind == "dense":
        for k in ("router", "shared_expert", "shared_expert_gate"):
            out.pop(k, None)
    return out


def _plan_edits(m: Match, diffs: dict) -> None:
    shared = diffs.pop("shared_expert", None)
    gate = diffs.pop("shared_expert_gate", None)
    if shared and shared[0] is None and shared[1]:
        m.edits.append(("shared_expert", {"hf_name": shared[1], "gated": bool(gate and gate[1] == "sigmoid"),
                                          "evidence": shared[2] + (f" | {gate[2]}" if gate else "")}))
    elif shared or gate:
        m.open += [f"shared expert: base {v[0]!r}, new {v[1]!r} ({v[2]})" for v in (shared, gate) if v]
    qk = diffs.pop("qk_norm", None)
    if qk and qk[0] and not qk[1]:
        m.edits.append(("drop_qk_norm", {"evidence": qk[2]}))
    elif qk:
        m.open.append(f"qk-norm: the base has none, the new model has it ({qk[2]})")
    qb, ob = diffs.pop("q_proj_bias", None), diffs.pop("o_proj_bias", None)
    if qb or ob:
        m.edits.append(("projection_bias", {"qkv": (qb or (None, "attention_bias"))[1],
                                            "out": (ob or (None, "attention_bias"))[1],
                                            "evidence": " | ".join(v[2] for v in (qb, ob) if v)}))
    m.open += [f"{k}: base {b!r}, new {n!r} ({ev})" for k, (b, n, ev) in diffs.items()]


def _bases(workspace: Path) -> dict[str, tuple[str, str]]:
    """Registered architectures, plus model directories whose `ModelClass` no registry entry points to
    (an implementation present but unregistered is the closest one there can be)."""
    bases = dict(arch_mapping(workspace))
    registered = {module for module, _ in bases.values()}
    for d in sorted(model_dirs(workspace)):
        module = f"nemo_automodel.components.models.{d}.model"
        path = workspace / MODELS / d / "model.py"
        if module in registered or not path.is_file():
            continue
        found = re.search(r"^ModelClass\s*=\s*(\w+)\s*$", path.read_text(encoding="utf-8"), re.M)
        if found and found.group(1) not in bases:
            bases[found.group(1)] = (module, found.group(1))
    return bases


def _tie_only_untied(workspace: Path, base_dir: str) -> bool:
    path = workspace / MODELS / base_dir / "model.py"
    return path.is_file() and "TieSupport.UNTIED_ONLY" in path.read_text(encoding="utf-8")


def _deprecated(workspace: Path, base_dir: str) -> bool:
    path = workspace / MODELS / base_dir / "model.py"
    return path.is_file() and "warn_deprecated_model_class" in path.read_text(encoding="utf-8")


def matches(analysis: dict, workspace: Path, kind: str) -> list[Match]:
    raw = analysis.get("raw_text_config") or {}
    new = F.structure(analysis["model_type"])
    if not new:
        return []
    out = []
    for arch, (module, cls) in _bases(workspace).items():
        parts = module.split(".")
        base_dir = parts[parts.index("models") + 1] if "models" in parts else None
        hf_type = _hf_type_of(arch)
        if not base_dir or not hf_type or _deprecated(workspace, base_dir):
            continue
        if (kind == "vlm") != arch.endswith("ForConditionalGeneration"):
            continue
        base = F.structure(hf_type)
        if not base:
            continue
        base_kind = "moe" if base.get("router", (None,))[0] == "softmax_topk" or base.get("shared_expert", (None,))[0] else "dense"
        m = Match(base_dir=base_dir, base_arch=arch, base_type=hf_type, module=module, cls=cls)
        diffs = _relevant(F.differences(new, base), raw, kind)
        if kind == "moe" and base_kind != "moe":
            continue  # a dense base has no experts to map
        m.diffs = dict(diffs)
        if raw.get("tie_word_embeddings") and _tie_only_untied(workspace, base_dir):
            m.open.append("tie_word_embeddings is true but the base declares TieSupport.UNTIED_ONLY")
        _plan_edits(m, diffs)
        # Fewer differences first; a dense model on a MoE base (its dense path) ranks after a dense base.
        m.score = len(m.edits) + 3 * len(m.open) + (0.5 if kind == "dense" and base_kind == "moe" else 0)
        if arch == arch_of(analysis) and not m.edits and not m.open:
            m.score = -1  # the architecture's own implementation, present but unregistered
        out.append(m)
    return sorted(out, key=lambda m: (m.score, m.base_dir != analysis["model_type"], m.base_dir))


def candidates(analysis: dict, workspace: Path, kind: str, limit: int) -> list[Candidate]:
    arch = arch_of(analysis)
    out: list[Candidate] = []
    for m in matches(analysis, workspace, kind):
        if any(c.id.split(":", 1)[1] == m.base_dir for c in out):
            continue  # one candidate per base directory (several archs may share it)
        if m.open:
            continue  # not a deterministic candidate: the plan hands these to the implementer
        if not m.edits:
            out.append(Candidate(id=f"alias:{m.base_dir}", base=m.base_dir, patterns=[],
                                 why=f"{m.base_arch}'s implementation covers {arch}: no structural difference",
                                 params={"arch": arch, "module": m.module, "cls": m.cls, "base_arch": m.base_arch}))
        elif {e for e, _ in m.edits} and _dry_run(workspace, m, analysis, arch):
            out.append(Candidate(id=f"derive:{m.base_dir}", base=m.base_dir, patterns=[e for e, _ in m.edits],
                                 why=f"derived from {m.base_dir} ({m.base_arch}); differences: "
                                     + ", ".join(e for e, _ in m.edits),
                                 params={"arch": arch, "base_arch": m.base_arch, "edits": m.edits, "cls": m.cls,
                                         "base_prefix": prefix_of(m.cls)}))
        if len(out) >= limit:
            break
    return out


def _dry_run(workspace: Path, m: Match, analysis: dict, arch: str) -> bool:
    try:
        derive(workspace, names_for(m.base_dir, prefix_of(m.cls), analysis["model_type"], arch), m.edits)
    except DeriveError:
        return False
    return True


def names_for(base_dir: str, base_prefix: str, model_type: str, arch: str) -> Names:
    return Names(base_type=base_dir, base_prefix=base_prefix, new_type=model_type.replace("-", "_"),
                 new_prefix=prefix_of(arch))
