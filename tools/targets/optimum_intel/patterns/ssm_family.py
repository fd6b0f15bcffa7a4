"""What the hybrid Mamba2 cache pattern reads from a mixer's own source: its prefill path and its config names.

optimum-intel's recurrent form of GraniteMoeHybrid's mixer replaces the whole torch_forward; the cache it
carries is the conv/recurrent state pair of the family's export. So what must equal GraniteMoeHybrid's is
the computation of a forward without a cache (`cache_params` None): the branches that read or write a cache
are dropped on both sides before comparing, and local names are compared up to a consistent renaming.
One written variant is accepted: an input projection split whose two leading parts of width `d_mlp` are
discarded (Mamba2's and NemotronH's), which is GraniteMoeHybrid's split when `d_mlp` is 0; the layout check
asks the instantiated model for that (`in_proj` as wide as the three parts the recurrent form splits).

The config names come from the mixers' __init__ (`self.ssm_state_size = config.state_size`): the family's
generator and patcher read GraniteMoeHybrid's names (`mamba_d_state`, ...), a model under other names gets
a copy of its config carrying both.
"""

from __future__ import annotations

import ast
import copy

from tools.targets.optimum_intel.patterns.ssm_variant import Variant, strip

CACHE = "cache_params"
D_MLP = "d_mlp"
# mixer attributes the family's generator derives the state sizes from (the recurrent form reads the mixer's)
PRODUCT = "*"  # joins the two config keys of a size read as their product
SIZE_ATTRS = ("num_heads", "head_dim", "ssm_state_size", "conv_kernel_size", "n_groups", "intermediate_size")


def _is_cache_check(node: ast.expr, falses: set[str]) -> bool | None:
    """True/False when `node` is known with no cache, None when it does not depend on one."""
    if isinstance(node, ast.Name) and node.id in falses:
        return False
    if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == CACHE
            and len(node.ops) == 1 and isinstance(node.comparators[0], ast.Constant)
            and node.comparators[0].value is None):
        return isinstance(node.ops[0], ast.Is)
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) and any(
            _is_cache_check(v, falses) is False for v in node.values):
        return False
    return None


def _without_cache(body: list[ast.stmt], falses: set[str]) -> list[ast.stmt]:
    out = []
    for stmt in body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and _is_cache_check(stmt.value, falses) is False):
            falses.add(stmt.targets[0].id)  # `use_precomputed_states = cache_params is not None and ...`
            continue
        if isinstance(stmt, ast.If) and (known := _is_cache_check(stmt.test, falses)) is not None:
            out += _without_cache(stmt.body if known else stmt.orelse, falses)
            continue
        if isinstance(stmt, ast.If):
            stmt = copy.copy(stmt)
            stmt.body, stmt.orelse = _without_cache(stmt.body, falses), _without_cache(stmt.orelse, falses)
        out.append(stmt)
    return out


def _leading_split(body: list[ast.stmt]) -> list[ast.stmt]:
    """`d_mlp = ...; _, _, a, b, c = x.split([d_mlp, d_mlp, A, B, C], ...)` -> `a, b, c = x.split([A, B, C], ...)`."""
    out, i = [], 0
    while i < len(body):
        stmt, nxt = body[i], body[i + 1] if i + 1 < len(body) else None
        if (isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == [D_MLP]
                and isinstance(nxt, ast.Assign) and len(nxt.targets) == 1 and isinstance(nxt.targets[0], ast.Tuple)
                and isinstance(nxt.value, ast.Call) and nxt.value.args and isinstance(nxt.value.args[0], ast.List)):
            names, sizes = nxt.targets[0].elts, nxt.value.args[0].elts
            if ([getattr(n, "id", None) for n in names[:2]] == ["_", "_"]
                    and [getattr(s, "id", None) for s in sizes[:2]] == [D_MLP, D_MLP]):
                split = copy.deepcopy(nxt)
                split.targets[0].elts, split.value.args[0].elts = names[2:], sizes[2:]
                out.append(split)
                i += 2
                continue
        out.append(stmt)
        i += 1
    return out


class _Rename(ast.NodeTransformer):
    """Each binding of an argument or local name -> a fresh v0, v1, ... in order, every later read -> the
    binding it reads (statements in order, a branch's bindings after its test's reads): two forwards that
    differ only in the names they give their values, or in reusing a name for a new value, compare equal."""

    def __init__(self, local: set[str]):
        self.local, self.current, self.count = local, {}, 0

    def bind(self, name: str) -> str:
        if name not in self.local:
            return name
        self.current[name] = f"v{self.count}"
        self.count += 1
        return self.current[name]

    def visit_Name(self, node):
        name = self.bind(node.id) if isinstance(node.ctx, ast.Store) else self.current.get(node.id, node.id)
        return ast.copy_location(ast.Name(id=name, ctx=node.ctx), node)

    def visit_arg(self, node):
        return ast.copy_location(ast.arg(arg=self.bind(node.arg)), node)

    def visit_Assign(self, node):
        node.value = self.visit(node.value)  # the value is read before the targets are bound
        node.targets = [self.visit(t) for t in node.targets]
        return node

    def visit_AugAssign(self, node):
        node.value = self.visit(node.value)
        target = node.target
        if isinstance(target, ast.Name):
            read = ast.Name(id=self.current.get(target.id, target.id), ctx=ast.Load())
            return ast.copy_location(ast.Assign(targets=[self.visit(target)],
                                                value=ast.BinOp(left=read, op=node.op, right=node.value)), node)
        node.target = self.visit(target)
        return node


def prefill_shape(func: ast.FunctionDef, variants: bool = False) -> str:
    """The forward's computation without a cache, comparable across classes (see the module doc); with
    `variants`, without the written variant steps patterns/ssm_variant.py recognises."""
    body = [s for s in func.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    body = _without_cache(body, set())
    if variants:
        body, _ = strip(body)
    body = _leading_split(body)
    args = copy.deepcopy(func.args)
    for a in args.args + args.kwonlyargs:
        a.annotation = None
    local = {a.arg for a in args.args + args.kwonlyargs} | {
        n.id for s in body for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    renamer = _Rename(local)
    args = renamer.visit(args)
    body = [renamer.visit(s) for s in copy.deepcopy(body)]
    return ast.dump(args) + "\n" + "\n".join(ast.dump(s) for s in body)


def _config_product(value: ast.expr) -> str | None:
    """`config.a * config.b` -> "a*b" (a size the mixer reads as a product of two config keys)."""
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)):
        return None
    keys = [v.attr for v in (value.left, value.right)
            if isinstance(v, ast.Attribute) and getattr(v.value, "id", None) == "config"]
    return PRODUCT.join(keys) if len(keys) == 2 else None


def variants(func: ast.FunctionDef) -> tuple[Variant, ...]:
    """The written variant steps on the forward's cache-free path (patterns/ssm_variant.py)."""
    body = [s for s in func.body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    return strip(_without_cache(body, set()))[1]


def config_names(cls: ast.ClassDef) -> dict[str, str]:
    """mixer attribute -> the config key its __init__ reads it from (`self.a = config.b`, or
    `self.a = int(config.b * self.hidden_size)` for the intermediate size), or "b*c" for
    `self.a = config.b * config.c` (NemotronH's intermediate size: heads times head size)."""
    init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    out = {}
    for stmt in ast.walk(init) if init else []:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Attribute)
                and getattr(stmt.targets[0].value, "id", None) == "self"):
            continue
        value = stmt.value
        if isinstance(value, ast.IfExp) and _width(stmt) is not None:
            value = value.body  # `int(config.expand * self.hidden_size) if config.width is None else config.width`
        if (isinstance(value, ast.Call) and getattr(value.func, "id", None) == "int" and len(value.args) == 1
                and isinstance(value.args[0], ast.BinOp) and isinstance(value.args[0].op, ast.Mult)):
            value = value.args[0].left  # int(config.expand * self.hidden_size)
        if isinstance(value, ast.Attribute) and getattr(value.value, "id", None) == "config":
            out[stmt.targets[0].attr] = value.attr
        elif (product := _config_product(value)) is not None:
            out[stmt.targets[0].attr] = product
    return out


def _width(stmt: ast.Assign) -> str | None:
    """`self.intermediate_size = <the family's> if config.w is None else config.w` -> w."""
    value = stmt.value
    if not (isinstance(value, ast.IfExp) and isinstance(value.test, ast.Compare) and len(value.test.ops) == 1
            and isinstance(value.test.ops[0], ast.Is) and isinstance(value.test.comparators[0], ast.Constant)
            and value.test.comparators[0].value is None):
        return None
    left, other = value.test.left, value.orelse
    if (isinstance(left, ast.Attribute) and getattr(left.value, "id", None) == "config" and isinstance(other, ast.Attribute)
            and getattr(other.value, "id", None) == "config" and other.attr == left.attr):
        return left.attr
    return None


def width_name(cls: ast.ClassDef) -> str | None:
    """The config key that, when set, gives the mixer's intermediate size outright instead of the family's
    `expand * hidden_size` (FalconH1: `mamba_d_ssm`)."""
    init = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    for stmt in ast.walk(init) if init else []:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Attribute)
                and getattr(stmt.targets[0].value, "id", None) == "self" and stmt.targets[0].attr == "intermediate_size"):
            return _width(stmt)
    return None


def family_names(reference: ast.ClassDef, mixer: ast.ClassDef) -> tuple[dict[str, str], list[str]]:
    """(family config name -> the model's config name, problems) for the sizes the family's export reads."""
    ref, own = config_names(reference), config_names(mixer)
    names, problems = {}, []
    for attr in SIZE_ATTRS:
        if attr not in ref:
            problems.append(f"the family's mixer does not read {attr} from its config")
        elif attr not in own:
            problems.append(f"{mixer.name} does not read {attr} from its config")
        elif PRODUCT in own[attr] and not (attr == "intermediate_size" and PRODUCT not in ref[attr]):
            # only the intermediate size is read by the family as a factor of hidden_size (`mamba_expand`):
            # a product of the model's keys gives that factor exactly; any other size is one key there
            problems.append(f"{mixer.name} reads {attr} as a product of config keys, the family as one key")
        else:
            names[ref[attr]] = own[attr]
    return names, problems


def own_value(config, own: str):
    """The value the family reads, from the model's config key(s) `own`: a product of two
    keys is the mixers' intermediate size, which the family reads as `mamba_expand` * hidden_size, so the
    factor is kept as an exact fraction (int(factor * hidden_size) then gives the size back exactly)."""
    if PRODUCT not in own:
        return getattr(config, own)
    from fractions import Fraction

    left, right = own.split(PRODUCT)
    return Fraction(getattr(config, left) * getattr(config, right), config.hidden_size)
