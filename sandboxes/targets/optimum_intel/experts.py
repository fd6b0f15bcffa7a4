"""Which experts of a tiny MoE model the parity inputs actually reach (runs inside the sandbox).

A parity check on inputs that route every token to the same few experts says nothing about the
others: an expert that is never selected can be exported wrongly and still "pass". Routers are found
by their output (router logits over all experts, or the selected expert indices), counted per layer
with forward hooks, and the job adds inputs until every expert of every MoE layer was selected.
"""

from __future__ import annotations

EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
TOPK_KEYS = ("num_experts_per_tok", "moe_topk", "moe_k", "top_k")


def moe_shape(config) -> tuple[int, int] | None:
    """(experts per MoE layer, experts per token) from the model's text config, or None for a dense model."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    experts = next((getattr(cfg, k) for k in EXPERT_KEYS if isinstance(getattr(cfg, k, None), int)), 0)
    topk = next((getattr(cfg, k) for k in TOPK_KEYS if isinstance(getattr(cfg, k, None), int)), 0)
    return (experts, max(1, topk)) if experts and experts > 1 else None


def has_experts(model) -> bool:
    """A config may name an expert count the model does not use (doge keeps num_experts with is_moe off):
    only a model with expert modules is checked. GraniteMoe's experts are `input_linear`/`output_linear`
    modules of a `*ParallelExperts` class: the class name counts too."""
    return any(is_experts_module(name, module) for name, module in model.named_modules())


def is_experts_module(name: str, module) -> bool:
    return name.rsplit(".", 1)[-1] in ("experts", "expert") or type(module).__name__.endswith("Experts")


def router_width(module, experts: int) -> int:
    """How many slots the router chooses among: its routing linear's rows. A router may score more slots
    than the model has expert weights (LongCat-Flash's zero-computation experts: slots past the real
    ones return their input unchanged); those slots are routed to but are not experts to cover."""
    import torch

    candidates = [module, *module.children()]
    shapes = [tuple(c.weight.shape) for c in candidates
              if isinstance(getattr(c, "weight", None), torch.Tensor) and c.weight.dim() == 2]
    # A weight stored (hidden, experts) is transposed, not wider: its rows are the hidden size.
    return max([rows for rows, cols in shapes if rows > experts and cols != experts], default=experts)


def _selected(output, experts: int, topk: int, width: int | None = None):
    """The slot indices a router output selects, or None when the output is not a router's. Chosen indices
    may reach past the real experts up to the router's `width`; logits count only over exactly `experts`
    (a wider float output is as likely a projection that happens to be named like a gate)."""
    import torch

    parts = output if isinstance(output, (tuple, list)) else (output,)
    ints = [p for p in parts if torch.is_tensor(p) and not p.is_floating_point() and p.numel()]
    for p in ints:  # routers that return the chosen indices
        if p.shape[-1] == topk and int(p.max()) < (width or experts):
            return p.reshape(-1)
    for p in parts:  # routers that return logits (or probabilities) over all experts
        if torch.is_tensor(p) and p.is_floating_point() and p.dim() >= 2 and p.shape[-1] == experts:
            return p.reshape(-1, experts).topk(topk, dim=-1).indices.reshape(-1)
    return None


class Coverage:
    """Forward hooks on every module that looks like a router; `used[name]` is the set of experts hit."""

    def __init__(self, model, experts: int, topk: int):
        self.experts, self.topk = experts, topk
        self.used: dict[str, set[int]] = {}
        # Tokens sent to zero-computation slots (past the real experts), per layer: reported, not required.
        self.zero_slots: dict[str, int] = {}
        self._hooks = []
        for name, module in model.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("gate", "router") or leaf.endswith("_router") or leaf.endswith("_gate"):
                self._hooks.append(module.register_forward_hook(self._hook(name, router_width(module, experts))))

    def _hook(self, name: str, width: int):
        def record(module, args, output):
            chosen = _selected(output, self.experts, self.topk, width)
            if chosen is not None:
                # The real experts are the first `experts` slots (the expert weights are indexed by them).
                picks = [int(i) for i in chosen.tolist()]
                self.used.setdefault(name, set()).update(i for i in picks if i < self.experts)
                if width > self.experts:
                    self.zero_slots[name] = self.zero_slots.get(name, 0) + sum(i >= self.experts for i in picks)
        return record

    def idle(self) -> dict[str, list[int]]:
        return {name: sorted(set(range(self.experts)) - got) for name, got in self.used.items()
                if len(got) < self.experts}

    def summary(self) -> dict:
        out = {"layers": len(self.used), "experts": self.experts, "top_k": self.topk,
               "min_used": min((len(v) for v in self.used.values()), default=0), "idle": self.idle()}
        if self.zero_slots:
            out["zero_slot_picks"] = sum(self.zero_slots.values())
        return out

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


def random_batch(vocab: int, seed: int, rows: int = 2, length: int = 24) -> dict:
    """More tokens for the routers to spread: ids drawn inside the vocabulary, no padding."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
