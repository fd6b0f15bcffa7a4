"""Candidate search for optimum-intel over (base class x patterns).

Bases come in transformers' lineage order, then generic dense decoders by config similarity; a base whose
MAX_TRANSFORMERS_VERSION is below the installed transformers goes last (its export refuses the version).
Each base carries the patterns whose preconditions hold for it. When the MoE pattern applies, every base
is first tried with it (an alias alone leaves the experts untraceable), and plain aliases follow as the
fallback. The verification decides; the order only spends the candidate budget where it is likeliest to pay.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.version import InvalidVersion, Version

from tools.targets.base import Candidate
from tools.targets.optimum_intel.patterns.base import PatternContext, applicable
from tools.targets.optimum_intel.patterns.edit import max_transformers_version
from tools.targets.optimum_intel.patterns.gated_delta import family_bases as gated_delta_bases
from tools.targets.optimum_intel.patterns.lightning_hybrid import family_bases as lightning_bases
from tools.targets.optimum_intel.patterns.moe import FLAT_OUTPUT, MOE_BATCHED_MM
from tools.targets.optimum_intel.patterns.moe_granite import GRANITE_EXPERTS
from tools.targets.optimum_intel.patterns.moe_grouped import GROUPED_GEMM
from tools.targets.optimum_intel.patterns.moe_identity import IDENTITY_EXPERTS
from tools.targets.optimum_intel.patterns import ssm_mamba1
from tools.targets.optimum_intel.patterns.moe_ungated import UNGATED_EXPERTS
from tools.targets.optimum_intel.patterns.ssm_hybrid import family_bases

GENERIC_DENSE_BASES = ("llama", "qwen2", "mistral", "qwen3", "gemma", "phi3", "olmo2")
# config-key similarity a registered type needs to be tried as a base, and how many are; below GENERIC_MIN
# to every generic base, the registered types are searched
CLOSEST_MIN, CLOSEST_TOP, GENERIC_MIN = 0.6, 2, 0.5
# patterns that make experts traceable: a base is tried with them first, then as a plain alias
MOE_PATTERNS = (MOE_BATCHED_MM.name, FLAT_OUTPUT.name, GRANITE_EXPERTS.name, GROUPED_GEMM.name,
                IDENTITY_EXPERTS.name, UNGATED_EXPERTS.name)


@lru_cache(maxsize=64)
def _default_keys(model_type: str) -> frozenset[str]:
    from transformers import AutoConfig

    try:
        return frozenset(AutoConfig.for_model(model_type).to_dict())
    except Exception:  # noqa: BLE001 - a base whose config cannot be built offline just scores zero
        return frozenset()


def similarity(raw: dict, base: str) -> float:
    keys, other = set(raw), _default_keys(base)
    return len(keys & other) / max(1, len(keys | other))


def closest_registered(raw: dict, registry: dict[str, str], top: int = CLOSEST_TOP) -> list[tuple[str, float]]:
    """Registered types whose default config shares most of this config's keys (families transformers
    copied code from without a modular file, e.g. mvp from bart), best first, above CLOSEST_MIN."""
    scored = [(t, similarity(raw, t)) for t in registry if t not in GENERIC_DENSE_BASES]
    return sorted([x for x in scored if x[1] >= CLOSEST_MIN], key=lambda x: -x[1])[:top]


def _installed_transformers() -> Version | None:
    try:
        return Version(metadata.version("transformers"))
    except (metadata.PackageNotFoundError, InvalidVersion):
        return None


def _capped(workspace: Path, cls: str) -> str | None:
    cap, installed = max_transformers_version(workspace, cls), _installed_transformers()
    try:
        return cap if cap and installed and installed > Version(cap) else None
    except InvalidVersion:
        return None


def bases(analysis: dict, workspace: Path, registry: dict[str, str]) -> list[tuple[str, str, str]]:
    """(model type of the base, its config class, why), in the order to try them."""
    raw = analysis.get("raw_text_config") or {}
    seen, ranked, late = set(), [], []

    def add(base: str, why: str, lifts_cap: bool = False) -> None:
        cls = registry.get(base)
        if not cls or cls in seen or base == analysis["model_type"]:
            return
        seen.add(cls)
        cap = None if lifts_cap else _capped(workspace, cls)
        if cap:
            late.append((base, cls, f"{why}; tried last: {cls} caps transformers at {cap}"))
        else:
            ranked.append((base, cls, why))

    for fam, why in (family_bases(analysis, workspace, registry) + lightning_bases(analysis, workspace, registry)
                     + ssm_mamba1.family_bases(analysis, workspace, registry)):
        add(fam, why)
    for fam, why in gated_delta_bases(analysis, workspace, registry):
        add(fam, why, lifts_cap=True)  # the gated-delta pattern's class sets MAX_TRANSFORMERS_VERSION = None
    for fam in analysis.get("lineage", []):
        add(fam, "transformers builds this model from it (modular lineage)")
    nested = raw.get("model_type") if analysis.get("text_config_key") else None
    if isinstance(nested, str):
        add(nested, f"its language model is a {nested} (the nested text config's model type)")
    if not ranked and max(similarity(raw, b) for b in GENERIC_DENSE_BASES) < GENERIC_MIN:
        # nothing in the lineage and unlike every generic decoder: an older family transformers copied code
        # from (scoring every registered type costs seconds, so only then)
        for fam, score in closest_registered(raw, registry):
            add(fam, f"the registered type with the most similar config (similarity {score:.2f})")
    for fam in sorted(GENERIC_DENSE_BASES, key=lambda b: -similarity(raw, b)):
        add(fam, f"generic dense decoder, config similarity {similarity(raw, fam):.2f}")
    return ranked + late


def search(analysis: dict, workspace: Path, registry: dict[str, str], limit: int) -> list[Candidate]:
    first, fallback = [], []
    for base, cls, why in bases(analysis, workspace, registry):
        found = applicable(PatternContext(analysis, workspace, cls))
        names = [n for n, _ in found]
        reasons = "; ".join(f"{n}: {r}" for n, r in found)
        full = Candidate(id=_cid(base, names), base=base, patterns=names, params={"base_class": cls},
                         why=f"{why}; patterns — {reasons}" if found else why)
        if set(names) & set(MOE_PATTERNS):
            first.append(full)
            rest = [n for n in names if n not in MOE_PATTERNS]
            fallback.append(Candidate(id=_cid(base, rest), base=base, patterns=rest, params={"base_class": cls},
                                      why=f"{why}; without the MoE pattern, as a fallback"))
        else:
            first.append(full)
    return (first + fallback)[:limit]


def _cid(base: str, patterns: list[str]) -> str:
    return f"{base}+{'+'.join(patterns)}" if patterns else f"alias:{base}"
