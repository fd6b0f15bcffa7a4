"""Which aiconfigurator family can count a model's layers, and what the parser must learn: S1, S2 or S3.

aiconfigurator prices a network as a sum of ops, each scaled by how many layers carry it; a family is a
model class that knows which layer kinds exist. A family *fits* when it counts every layer kind of the
model (attention kinds, dense vs MoE FFN, dense layers among MoE ones, shared experts). The situation
then depends on the parser: S1 when the fields the family's branch reads are in the config as they are,
S2 when they are there in another form the branch can be taught (a scalar layer interval instead of a
per-layer list, a nested text config not yet registered), S3 when no family counts the layers.

The profiles below describe what each family's model class counts (read from its class in the
repository, Aug 2026); only families the workspace defines are considered. Families that need fields no
other model has (sparse indexers, compressed attention, vision towers) are not proposed for a new
architecture: they are matched only by the architectures already mapped to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.targets.aiconfigurator.registry import Branch, Registry

Attn = str  # "full" | "sliding" | "linear" | "ssm" | "mla"


@dataclass(frozen=True)
class Profile:
    attn: frozenset[Attn]  # layer kinds its class counts separately
    moe: str  # "no" | "yes" (every FFN is MoE) | "either"
    mixed: bool  # dense-only layers among MoE layers (first_k_dense, per-layer frequency)
    shared: bool  # an always-on shared expert beside the routed ones
    mtp: bool  # MTP modules scale generation cost
    needs_branch: bool  # its class asserts a typed extra_params only a parser branch fills


PROFILES: dict[str, Profile] = {
    "LLAMA": Profile(frozenset({"full"}), "no", False, False, False, False),
    # "TODO: redesign shared moe part" in the MOE class: shared experts are not priced.
    "MOE": Profile(frozenset({"full"}), "yes", False, False, True, False),
    "DEEPSEEK": Profile(frozenset({"mla"}), "yes", True, True, True, False),
    "QWEN35": Profile(frozenset({"linear", "full"}), "either", False, True, False, True),
    "HYBRIDMOE": Profile(frozenset({"sliding", "full"}), "either", True, False, False, True),
    # Gemma 4 runs a dense MLP beside the MoE on every layer; no dense-only layers.
    "GEMMA4MIX": Profile(frozenset({"sliding", "full"}), "either", False, False, False, True),
    "NEMOTRONH": Profile(frozenset({"ssm", "full"}), "either", True, True, True, True),
    "STEP3P7": Profile(frozenset({"sliding", "full"}), "yes", True, True, True, True),
}

LAYER_KIND = {"full_attention": "full", "attention": "full", "global_attention": "full",
              "sliding_attention": "sliding", "chunked_attention": "sliding", "linear_attention": "linear"}
SSM = {"mamba", "mamba2", "ssm", "recurrent"}
# Scalar spellings of a per-layer pattern and the list they stand for: (every n-th layer, the others).
PATTERN_SCALARS = {"full_attention_interval": ("full_attention", "linear_attention"),
                   "sliding_window_pattern": ("full_attention", "sliding_attention")}


@dataclass
class Needs:
    """What the model asks of a family, from the analysis (config.json, nested text_config)."""

    attn: set[Attn]
    moe: bool
    mixed: bool
    shared: bool
    mtp: int
    evidence: list[str]


def needs(analysis: dict) -> Needs:
    pattern = analysis.get("layer_pattern") or []
    attn = {LAYER_KIND.get(t, "ssm" if t in SSM else "full") for t in pattern if t not in ("mlp", "moe")} or {"full"}
    ev = [f"layers: {len(pattern)} ({', '.join(f'{pattern.count(t)} {t}' for t in dict.fromkeys(pattern))})"]
    if analysis.get("mla"):
        attn = (attn - {"full"}) | {"mla"}
        ev.append("attention: multi-head latent (kv_lora_rank)")
    moe = analysis.get("moe") or {}
    raw = analysis.get("raw_text_config") or {}
    freq = moe.get("moe_layer_freq")
    mixed = bool(moe) and bool(moe.get("first_k_dense") or moe.get("mlp_only_layers")
                               or (isinstance(freq, int) and freq > 1) or (isinstance(freq, list) and 0 in freq))
    shared = bool(moe) and bool(moe.get("num_shared_experts") or raw.get("shared_expert_intermediate_size")
                                or raw.get("share_expert_dim"))
    if moe:
        ev.append(f"MoE: {moe.get('num_experts')} experts, top-{moe.get('top_k')}"
                  + (f", {moe.get('num_shared_experts') or 1} shared expert(s)" if shared else "")
                  + (f", dense layers among MoE (first_k_dense={moe.get('first_k_dense')}, "
                     f"mlp_only_layers={moe.get('mlp_only_layers')}, freq={freq})" if mixed else ""))
    mtp = int(analysis.get("mtp_layers") or 0)
    if mtp:
        ev.append(f"MTP: {mtp} predict layer(s)")
    return Needs(attn=attn, moe=bool(moe), mixed=mixed, shared=shared, mtp=mtp, evidence=ev)


def misses(n: Needs, p: Profile) -> tuple[list[str], list[str]]:
    """(hard, soft): what the family cannot count at all, and what it prices as if absent (MTP)."""
    hard = [f"does not count {k} attention layers" for k in sorted(n.attn - p.attn)]
    if n.moe and p.moe == "no":
        hard.append("has no MoE FFN")
    if not n.moe and p.moe == "yes":
        hard.append("prices every FFN as MoE, the model is dense")
    if n.mixed and not p.mixed:
        hard.append("cannot count dense-only layers among MoE layers")
    if n.shared and not p.shared:
        hard.append("does not price the shared expert")
    soft = [f"does not model MTP ({n.mtp} layer(s)): estimates without speculative decoding"] if n.mtp and not p.mtp \
        else []
    return hard, soft


def ranked(n: Needs, families: set[str]) -> list[tuple[str, list[str], list[str]]]:
    """Profiled families of the workspace, best first: fewest hard misses, then fewest unused kinds, then
    fewest soft misses (a family built for Mamba layers fits a dense model, but is not the closest)."""
    rows = []
    for fam in sorted(families & PROFILES.keys()):
        p = PROFILES[fam]
        hard, soft = misses(n, p)
        spare = len(p.attn - n.attn) + (p.moe == "either") + (p.mixed and not n.mixed) + (p.shared and not n.shared)
        rows.append((len(hard), spare, len(soft), fam, hard, soft))
    rows.sort()
    return [(fam, hard, soft) for _, _, _, fam, hard, soft in rows]


@dataclass
class ParserPlan:
    how: str  # "generic" | "join" | "new_branch" | "missing"
    branch: Branch | None
    normalise: dict[str, tuple[str, str]]  # scalar pattern key -> (every n-th, others)
    missing: list[str]
    text_key: str | None  # a nested text_config to register in MULTIMODAL_TEXT_CONFIG_KEY


def closest_branch(reg: Registry, family: str, config: dict) -> Branch | None:
    """The branch of an architecture of the same family whose keys the config has most of."""
    own = [b for b in reg.branches if any(reg.arch_to_family.get(a) == family for a in b.archs)]
    return max(own, key=lambda b: sum(k in config for k in b.required + b.optional), default=None)


def parser_plan(reg: Registry, family: str, arch: str, analysis: dict) -> ParserPlan:
    config = analysis.get("raw_text_config") or {}
    key = analysis.get("text_config_key")
    text_key = key if key and arch not in reg.text_config_key else None
    profile = PROFILES.get(family)
    branch = closest_branch(reg, family, config)
    if branch is not None and not (profile and profile.needs_branch):
        # A family the generic fields describe: join a branch only for what it adds and the config declares
        # (a branch that reads nothing sets a flag, Qwen3's use_qk_norm, which the config must state).
        reads = branch.required + branch.optional
        wanted = all(k in config for k in branch.required) and any(k in config for k in reads) if reads \
            else config.get("use_qk_norm") is True
        branch = branch if wanted else None
    if branch is None:
        how = "missing" if profile and profile.needs_branch else "generic"
        return ParserPlan(how, None, {}, ["a parser branch filling the family's extra_params"] if how == "missing"
                          else [], text_key)
    absent = [k for k in branch.required if k not in config]
    normalise = {}
    if "layer_types" in branch.optional + branch.required and not isinstance(config.get("layer_types"), list):
        scalar = next((k for k in PATTERN_SCALARS if config.get(k)), None)
        if scalar:
            normalise[scalar] = PATTERN_SCALARS[scalar]
        else:
            absent.append("layer_types")
    absent = [k for k in absent if k != "layer_types" or not normalise]
    if absent:
        return ParserPlan("missing", branch, normalise, absent, text_key)
    return ParserPlan("new_branch" if normalise else "join", branch, normalise, [], text_key)
