"""FlashInfer-Bench model entries: the SGLang baseline read by AST, the module tree, the layer counts.

SGLang is the serving engine FlashInfer-Bench measures against, so its model file is the source of the
module names (`qkv_proj`, `gate_up_proj`, `attn`, ...). The file is parsed, never imported: importing
sglang needs CUDA and half of PyPI, and the attribute assignments in `__init__` are all we need. Sizes and
layer counts come from our own config analysis (tools/hf_config.py), never from upstream entries.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MODELS_PKG = "sglang/srt/models/"
INDEX_VERSION = 7  # bump when the index format or the extraction rules change: cached indexes go stale
# Constructors -> the op a leaf module runs. Anything not listed (and not a model class) is not a module
# FlashInfer-Bench tracks (logits processors, poolers, pipeline placeholders).
LEAF_OPS = {
    "RMSNorm": "norm", "GemmaRMSNorm": "norm", "Qwen3NextRMSNorm": "norm",
    "QKVParallelLinear": "gemm_qkv", "MergedColumnParallelLinear": "gemm_merged",
    "RowParallelLinear": "gemm_row", "ColumnParallelLinear": "gemm_col", "ReplicatedLinear": "gemm",
    "RadixAttention": "attn", "get_rope": "rope", "get_rope_wrapper": "rope",
    "VocabParallelEmbedding": "embedding", "ParallelLMHead": "lm_head",
    "SiluAndMul": "act", "GeluAndMul": "act", "get_act_fn": "act",
    "TopK": "moe_topk", "get_moe_impl_class": "moe_experts", "FusedMoE": "moe_experts",
    "MoEGate": "moe_gate",
}
LAYER_BUILDERS = {"make_layers", "make_pp_layers", "ModuleList"}
# Upstream entries name the model-level blocks after the class, everything else after the attribute.
CLASS_NAMED = re.compile(r"(ForCausalLM|ForConditionalGeneration|Model|DecoderLayer)$")
VISION = re.compile(r"(?i)vision|visual|audio|multi_modal|mm_projector|image")
MOE_RENAME = {"gate": "moe_gate", "topk": "moe_topk", "experts": "moe_experts"}


class BaselineMissing(LookupError):
    """SGLang has no model file for this architecture (or no baseline is available at all)."""


# -- reading the SGLang package ------------------------------------------------------------------------


@dataclass
class ClassInfo:
    module: str
    name: str
    bases: list[str]
    attrs: list[tuple[str, str, str]]  # (attribute, constructor, first-argument text), in source order
    defaults: dict[str, str]  # __init__ parameter -> default class name (decoder_layer_type=...)
    factories: dict[str, str]  # method -> class it returns; overridden in subclasses (Llama4's _init_model)


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return _call_name(node.func)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _layer_class(call: ast.Call, factories: dict[str, str]) -> str:
    """The decoder-layer class a make_layers / ModuleList call builds (a lambda, a comprehension, or a
    local `def layer_fn(...): return DecoderLayer(...)` passed by name)."""
    for sub in ast.walk(call):
        if isinstance(sub, ast.Lambda) and isinstance(sub.body, ast.Call):
            return _call_name(sub.body)
        if isinstance(sub, (ast.ListComp, ast.GeneratorExp)) and isinstance(sub.elt, ast.Call):
            return _call_name(sub.elt)
    for arg in call.args:
        if isinstance(arg, ast.Name) and arg.id in factories:
            return factories[arg.id]
    return ""


def _local_defs(init: ast.FunctionDef) -> set[str]:
    return {f.name for f in ast.walk(init) if isinstance(f, ast.FunctionDef) and f is not init}


def _self_target(t: ast.AST) -> str | None:
    if isinstance(t, ast.Tuple) and t.elts:
        t = t.elts[0]
    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
        return t.attr
    return None


def _class_info(module: str, node: ast.ClassDef) -> ClassInfo:
    info = ClassInfo(module, node.name, [_call_name(b) for b in node.bases], [], {}, {})
    init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
    if init is None:
        return info
    # `self.model = self._init_model(...)`: a factory method stands for the class it returns.
    factories = {f.name: _call_name(r.value) for f in [*node.body, *ast.walk(init)] if isinstance(f, ast.FunctionDef)
                 for r in ast.walk(f) if isinstance(r, ast.Return) and isinstance(r.value, ast.Call)}
    args = init.args.args[-len(init.args.defaults):] if init.args.defaults else []
    for a, d in zip(args, init.args.defaults):
        if isinstance(d, ast.Name):
            info.defaults[a.arg] = d.id
    info.factories = {k: v for k, v in factories.items() if k.startswith("_") or k in _local_defs(init)}
    for sub in ast.walk(init):
        if not (isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Call)):
            continue
        attr = _self_target(sub.targets[0])
        if attr is None:
            continue
        ctor = _call_name(sub.value)
        if ctor in LAYER_BUILDERS:
            ctor = "layers:" + _layer_class(sub.value, factories)
        first = ast.unparse(sub.value.args[0]) if sub.value.args else ""
        info.attrs.append((attr, ctor, first))
    return info


def index_sources(files: dict[str, str]) -> dict:
    """{module: source} -> the JSON-able index the tree builder reads (classes, names, EntryClass)."""
    classes: dict[str, dict] = {}
    names: dict[str, dict[str, str]] = {}
    entries: dict[str, str] = {}
    for module, text in sorted(files.items()):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        local: dict[str, str] = {}
        # imports anywhere in the file count: some wrappers import their language model inside __init__
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sglang.srt.models."):
                other = node.module.rsplit(".", 1)[1]
                for alias in node.names:
                    local.setdefault(alias.asname or alias.name, f"{other}:{alias.name}")
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                info = _class_info(module, node)
                classes[f"{module}:{node.name}"] = info.__dict__
                local[node.name] = f"{module}:{node.name}"
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EntryClass" for t in node.targets):
                vals = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
                for v in vals:
                    if isinstance(v, ast.Name):
                        entries.setdefault(v.id, module)
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Name) and node.value.id in local):
                local[node.targets[0].id] = local[node.value.id]  # `Gemma4MLP = Gemma3MLP`
        names[module] = local
    # Through JSON once, so a fresh index and a cached one are the same data (lists, not tuples).
    return json.loads(json.dumps({"classes": classes, "names": names, "entries": entries}))


def index_wheel(wheel: Path, cache_dir: Path) -> dict:
    """Index the model files of an sglang wheel once; the JSON index is cached beside it."""
    import zipfile

    cached = cache_dir / f"{wheel.stem}.index-v{INDEX_VERSION}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    files = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(MODELS_PKG) and name.endswith(".py") and name.count("/") == 3:
                files[name[len(MODELS_PKG):-3]] = zf.read(name).decode("utf-8", "replace")
    index = index_sources(files)
    index["source"] = wheel.name
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(index))
    return index


def index_dir(models_dir: Path) -> dict:
    index = index_sources({p.stem: p.read_text() for p in sorted(models_dir.glob("*.py"))})
    index["source"] = str(models_dir)
    return index


# -- the module tree -----------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    type: str  # block | layer
    count: int
    parent: str | None = None
    op: str = ""  # leaf op (see LEAF_OPS), or "" for blocks and untracked leaves
    arg: str = ""  # first constructor argument, e.g. "config.hidden_size": tells a norm's width
    attr: str = ""  # the SGLang attribute the module came from
    definitions: list[str] = field(default_factory=list)


class _Resolver:
    def __init__(self, index: dict):
        self.classes, self.names = index["classes"], index["names"]

    def lookup(self, module: str, name: str) -> str | None:
        key = self.names.get(module, {}).get(name)
        return key if key in self.classes else None

    def mro(self, key: str) -> list[dict]:
        out, todo = [], [key]
        while todo:
            k = todo.pop(0)
            if k in (c["module"] + ":" + c["name"] for c in out):
                continue
            cls = self.classes[k]
            out.append(cls)
            todo += [b for b in (self.lookup(cls["module"], n) for n in cls["bases"]) if b]
        return out

    def attrs(self, key: str) -> list[tuple[str, list[tuple[str, str]], str]]:
        """(attribute, [(constructor key-or-name, arg)], module) with base-class attributes first."""
        seen: dict[str, list[tuple[str, str]]] = {}
        order: list[str] = []
        chain = self.mro(key)
        defaults: dict[str, str] = {}
        factories: dict[str, str] = {}
        for cls in chain:  # the most derived default (or factory method) wins
            for p, d in cls["defaults"].items():
                defaults.setdefault(p, d)
            for f, c in cls.get("factories", {}).items():
                factories.setdefault(f, c)
        for cls in reversed(chain):
            for attr, ctor, arg in cls["attrs"]:
                if attr not in seen:
                    seen[attr], _ = [], order.append(attr)
                if ctor.startswith("layers:"):
                    inner = ctor[7:]
                    inner = defaults.get(inner, inner)
                    ref = self.lookup(cls["module"], inner) or self.lookup(chain[0]["module"], inner)
                    ctor = "layers:" + (ref or inner)
                else:  # a factory method, or a class passed as a parameter, resolves to what it makes
                    ctor = defaults.get(factories.get(ctor, ctor), factories.get(ctor, ctor))
                    ctor = self.lookup(cls["module"], ctor) or self.lookup(chain[0]["module"], ctor) or ctor
                if (ctor, arg) not in seen[attr]:
                    seen[attr].append((ctor, arg))
        return [(a, seen[a], chain[0]["module"]) for a in order]


def baseline_for(index: dict, architecture: str) -> tuple[str, str]:
    """(module, class key) of the SGLang file whose EntryClass lists `architecture`."""
    module = index["entries"].get(architecture)
    if module is None:
        raise BaselineMissing(f"no SGLang model file declares {architecture} in EntryClass "
                              f"({index.get('source', 'index')})")
    return module, f"{module}:{architecture}"


def build_tree(index: dict, architecture: str, layer_counts: dict[str, int]) -> tuple[str, list[Module]]:
    """The flat module list of the entry; `layer_counts` says how many decoder layers use which mlp kind.

    Keys of `layer_counts`: "layers" (all), "dense" and "moe" (feed-forward kinds).
    """
    module, key = baseline_for(index, architecture)
    res = _Resolver(index)
    out: list[Module] = []
    used: set[str] = set()

    def unique(name: str, parent: str | None) -> str:
        # Module names are unique within an entry; a clash (or a shared expert) takes its parent as a prefix.
        if parent and (name in used or parent.startswith("shared_expert")):
            name = f"{parent}_{name}"
        used.add(name)
        return name

    def walk(cls_key: str, name: str, parent: str | None, count: int, moe: bool = False) -> None:
        out.append(Module(unique(name, parent), "block", count, parent, attr=name))
        me = out[-1].name
        for attr, ctors, _ in res.attrs(cls_key):
            classes = [(c, a) for c, a in ctors if c in res.classes and not VISION.search(res.classes[c]["name"])]
            if VISION.search(attr) or (attr == "router" and not layer_counts["moe"]):
                continue  # vision towers are not served kernels; a dense config never builds its router
            if layer_counts["moe"] == 0:  # MoE classes a dense config never builds
                classes = [(c, a) for c, a in classes if not _is_moe(res, c)]
            layers = [c[7:] for c, _ in ctors if c.startswith("layers:")]
            leaves = [(c, a) for c, a in ctors if LEAF_OPS.get(c)]
            if layers and layers[0] in res.classes:
                n = layer_counts["layers"]
                out.append(Module(unique(attr, me), "block", n, me, attr=attr))
                lname = out[-1].name
                walk(layers[0], res.classes[layers[0]]["name"], lname, n)
            elif len(classes) > 1 and any(_is_moe(res, c) for c, _ in classes):
                # Dense-first / interleaved MoE: one `mlp` attribute, two classes chosen per layer.
                out.append(Module(unique(attr, me), "block", count, me, attr=attr))
                mname = out[-1].name
                for c, _ in sorted(classes, key=lambda ca: _is_moe(res, ca[0])):
                    is_moe = _is_moe(res, c)
                    n = layer_counts["moe" if is_moe else "dense"]
                    if n:
                        walk(c, "moe" if is_moe else "mlp_dense", mname, n, moe=is_moe)
            elif classes:
                c = classes[0][0]
                cname = res.classes[c]["name"]
                is_moe = _is_moe(res, c)
                if is_moe and attr != "mlp" and not moe:  # block_sparse_moe and friends
                    walk(c, "moe", me, layer_counts["moe"], moe=True)
                elif attr == "mlp" and is_moe and layer_counts["dense"]:
                    out.append(Module(unique(attr, me), "block", count, me, attr=attr))
                    walk(c, "moe", out[-1].name, layer_counts["moe"], moe=True)
                elif attr == "mlp" and is_moe:
                    out.append(Module(unique(attr, me), "block", count, me, attr=attr))
                    walk(c, "moe", out[-1].name, count, moe=True)
                elif LEAF_OPS.get(cname):
                    out.append(Module(unique(MOE_RENAME.get(attr, attr) if moe else attr, me), "layer",
                                      count, me, LEAF_OPS[cname], attr=attr))
                else:
                    walk(c, cname if CLASS_NAMED.search(cname) else attr, me, count, moe=False)
            elif leaves:
                ctor, arg = leaves[0]
                leaf = MOE_RENAME.get(attr, attr) if moe else attr
                out.append(Module(unique(leaf, me), "layer", count, me, LEAF_OPS[ctor], arg, attr))

    walk(key, architecture, None, 1)
    return module, _merge_mla_attention(out)


def prune_for_config(mods: list[Module], a: dict) -> list[Module]:
    """Drop the branches SGLang builds only for other configs (MLA with or without a q LoRA)."""
    mla = a.get("mla")
    if not mla:
        return mods
    drop = {"q_proj", "kv_a_proj_with_mqa"} if mla.get("q_lora_rank") else \
        {"q_a_layernorm", "q_b_proj", "fused_qkv_a_proj_with_mqa"}
    return [m for m in mods if m.attr not in drop or m.op == ""]


def _is_moe(res: _Resolver, key: str) -> bool:
    # a top-k router marks a block as MoE even when its experts come from a factory we do not recognise
    return any(any(LEAF_OPS.get(c) in ("moe_experts", "moe_topk") for c, _ in ctors) for _, ctors, _ in res.attrs(key))


def _merge_mla_attention(mods: list[Module]) -> list[Module]:
    """SGLang's MLA keeps two RadixAttention objects (absorbed MQA decode, MHA prefill); FlashInfer-Bench
    tracks them as one `attn_mla` module, so they are folded into it."""
    attn = [m for m in mods if m.op == "attn" and m.attr in ("attn_mqa", "attn_mha")]
    if not attn:
        return mods
    first = attn[0]
    merged = Module("attn_mla", "layer", first.count, first.parent, "attn_mla", attr="attn_mla")
    out = []
    for m in mods:
        if m in attn or m.attr == "attn_mqa_for_dcp_decode":
            if m is first:
                out.append(merged)
            continue
        out.append(m)
    return out


# -- layer counts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parallel:
    tp: int = 1
    ep: int = 1
    page_sizes: tuple[int, ...] = (1,)


def layer_counts(analysis: dict) -> dict[str, int]:
    """How many decoder layers there are and how many of them run an MoE feed-forward, from the config."""
    n = analysis.get("num_layers") or 0
    moe = analysis.get("moe")
    if not moe:
        return {"layers": n, "dense": n, "moe": 0}
    first, freq = moe.get("first_k_dense") or 0, moe.get("moe_layer_freq")
    only = set(moe.get("mlp_only_layers") or [])
    sparse = 0
    for i in range(n):
        if i < first or i in only:
            continue
        if isinstance(freq, list):
            sparse += bool(freq[i]) if i < len(freq) else 0
        elif isinstance(freq, int) and freq > 1:
            sparse += (i + 1) % freq == 0  # qwen2-moe / llama4 convention: every freq-th layer
        else:
            sparse += 1
    return {"layers": n, "dense": n - sparse, "moe": sparse}
