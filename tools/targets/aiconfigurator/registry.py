"""What an aiconfigurator checkout registers, read from its source text (never from an installed copy).

The SDK keeps its registry as literals in `sdk/common.py` (the architecture → family map, the family set,
the nested-text-config map, the default and retired model ids), its parser as one `if/elif architecture`
chain in `sdk/utils.py::_parse_hf_config_json`, and the MoE family set in `sdk/models/helpers.py`. They are
read with `ast`, so a checkout that cannot be imported (no engine extension here) is still readable.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from tools.errors import UserError

# Since the July 2026 split the SDK lives in the core package; before it, in the application package.
SDK_ROOTS = ("aic-core/src/aiconfigurator_core/sdk", "src/aiconfigurator/sdk")
CONFIGS_DIRS = ("aic-core/src/aiconfigurator_core/model_configs", "src/aiconfigurator/model_configs")
PARSER = "_parse_hf_config_json"


class RegistryError(UserError):
    """The checkout does not have the shape this target reads; the message says which file/literal."""


@dataclass
class Branch:
    """One `elif architecture ...` arm of the parser: the architectures it takes and the keys it reads."""

    archs: list[str]
    start: int  # 1-based line of the `if`/`elif` keyword
    end: int  # last line of its body
    test_start: int
    test_end: int
    required: list[str] = field(default_factory=list)  # config["k"]
    optional: list[str] = field(default_factory=list)  # config.get("k")
    body: str = ""


@dataclass
class Registry:
    sdk: str  # workspace-relative SDK folder
    configs_dir: str
    families: set[str]
    arch_to_family: dict[str, str]
    text_config_key: dict[str, str]
    default_models: set[str]
    retired_models: set[str]
    moe_families: set[str]
    branches: list[Branch]

    @property
    def common(self) -> str:
        return f"{self.sdk}/common.py"

    @property
    def utils(self) -> str:
        return f"{self.sdk}/utils.py"

    def branch_for(self, arch: str) -> Branch | None:
        return next((b for b in self.branches if arch in b.archs), None)

    def archs_of(self, family: str) -> list[str]:
        return [a for a, f in self.arch_to_family.items() if f == family]


def sdk_root(workspace: Path) -> str:
    for rel in SDK_ROOTS:
        if (workspace / rel / "common.py").is_file() and (workspace / rel / "utils.py").is_file():
            return rel
    raise RegistryError(f"{workspace} has no aiconfigurator SDK (looked for {' or '.join(SDK_ROOTS)})")


def _assigned(tree: ast.Module, name: str) -> ast.expr | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node.value
    return None


def _strings(node: ast.expr | None) -> set[str]:
    """String constants of a set/list/frozenset(...) literal; starred names (`*OTHER`) are not followed."""
    if isinstance(node, ast.Call) and node.args:  # frozenset({...})
        node = node.args[0]
    if not isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        return set()
    return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def _str_dict(node: ast.expr | None, where: str) -> dict[str, str]:
    if not isinstance(node, ast.Dict):
        raise RegistryError(f"{where} is not a dict literal")
    return {k.value: v.value for k, v in zip(node.keys, node.values)
            if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}


def _arch_test(test: ast.expr) -> list[str] | None:
    """Architectures named by `architecture == "X"` or `architecture in {...}`; None for other tests."""
    if not (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "architecture"
            and len(test.ops) == 1):
        return None
    right = test.comparators[0]
    if isinstance(test.ops[0], ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, str):
        return [right.value]
    if isinstance(test.ops[0], ast.In) and isinstance(right, (ast.Set, ast.Tuple, ast.List)):
        return [e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def _reads(body: list[ast.stmt]) -> tuple[list[str], list[str]]:
    required, optional = [], []
    for stmt in body:
        for n in ast.walk(stmt):
            if (isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == "config"
                    and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str)):
                required.append(n.slice.value)
            elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get"
                  and isinstance(n.func.value, ast.Name) and n.func.value.id == "config" and n.args
                  and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)):
                optional.append(n.args[0].value)
    dedup = lambda xs: list(dict.fromkeys(xs))  # noqa: E731 - order of first read, once each
    return dedup(required), [k for k in dedup(optional) if k not in required]


def parser_branches(source: str) -> list[Branch]:
    tree = ast.parse(source)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == PARSER), None)
    if fn is None:
        raise RegistryError(f"utils.py has no {PARSER}()")
    lines = source.splitlines()
    out: list[Branch] = []
    for stmt in fn.body:
        node = stmt
        while isinstance(node, ast.If):
            archs = _arch_test(node.test)
            if archs is not None:
                req, opt = _reads(node.body)
                end = node.body[-1].end_lineno
                out.append(Branch(archs=archs, start=node.lineno, end=end, test_start=node.test.lineno,
                                  test_end=node.test.end_lineno, required=req, optional=opt,
                                  body="\n".join(lines[node.body[0].lineno - 1:end])))
            node = node.orelse[0] if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) else None
    return out


def read(workspace: Path) -> Registry:
    sdk = sdk_root(workspace)
    common_src = (workspace / sdk / "common.py").read_text()
    tree = ast.parse(common_src)
    helpers = workspace / sdk / "models" / "helpers.py"
    moe_node = _assigned(ast.parse(helpers.read_text()), "_MOE_MODEL_FAMILIES") if helpers.is_file() else None
    if moe_node is None:  # before the models/ package: models.py::check_is_moe names them inline
        moe = {"MOE", "DEEPSEEK"}
    else:
        moe = _strings(moe_node)
    configs = next((d for d in CONFIGS_DIRS if (workspace / d).is_dir()), CONFIGS_DIRS[0])
    return Registry(
        sdk=sdk, configs_dir=configs,
        families=_strings(_assigned(tree, "ModelFamily")),
        arch_to_family=_str_dict(_assigned(tree, "ARCHITECTURE_TO_MODEL_FAMILY"), "ARCHITECTURE_TO_MODEL_FAMILY"),
        text_config_key=_str_dict(_assigned(tree, "MULTIMODAL_TEXT_CONFIG_KEY") or ast.Dict(keys=[], values=[]),
                                  "MULTIMODAL_TEXT_CONFIG_KEY"),
        default_models=_strings(_assigned(tree, "DefaultHFModels")),
        retired_models=_strings(_assigned(tree, "RetiredSupportMatrixHFModels")),
        moe_families=moe,
        branches=parser_branches((workspace / sdk / "utils.py").read_text()),
    )
