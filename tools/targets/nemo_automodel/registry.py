"""NeMo AutoModel's registry, read from and written into the workspace's `_transformers/registry.py`.

`MODEL_ARCH_MAPPING` maps an architecture name to (module, class[, tags]); `_CUSTOM_CONFIG_REGISTRATIONS`
maps a model_type to the repository's own config class when transformers lacks one. Both are read with
`ast` (the workspace is never imported on the host) and written as one entry in the file's own format.
"""

from __future__ import annotations

import ast
from pathlib import Path

REGISTRY = "nemo_automodel/_transformers/registry.py"
MODELS = "nemo_automodel/components/models"


class RegistryError(RuntimeError):
    pass


def _tree(workspace: Path) -> tuple[str, ast.Module]:
    path = workspace / REGISTRY
    if not path.is_file():
        raise RegistryError(f"{REGISTRY} not found in the workspace: is this NeMo AutoModel?")
    text = path.read_text(encoding="utf-8")
    return text, ast.parse(text)


def _assigned(tree: ast.Module, name: str) -> ast.AST | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", "") == name for t in targets):
            return node.value
    return None


def _arch_list(tree: ast.Module) -> ast.List:
    value = _assigned(tree, "MODEL_ARCH_MAPPING")
    if isinstance(value, ast.Call) and value.args and isinstance(value.args[0], ast.List):
        return value.args[0]
    raise RegistryError(f"{REGISTRY}: MODEL_ARCH_MAPPING is not an OrderedDict([...]) literal")


def arch_mapping(workspace: Path) -> dict[str, tuple[str, str]]:
    _, tree = _tree(workspace)
    out = {}
    for elt in _arch_list(tree).elts:
        arch, target = ast.literal_eval(elt)
        out[arch] = (target[0], target[1])
    return out


def custom_configs(workspace: Path) -> dict[str, tuple[str, str]]:
    _, tree = _tree(workspace)
    value = _assigned(tree, "_CUSTOM_CONFIG_REGISTRATIONS")
    return dict(ast.literal_eval(value)) if isinstance(value, ast.Dict) else {}


def model_dirs(workspace: Path) -> set[str]:
    root = workspace / MODELS
    return {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} if root.is_dir() else set()


def add_arch(workspace: Path, arch: str, module: str, cls: str) -> bool:
    """Append `arch` to MODEL_ARCH_MAPPING; False when it is already there with the same target."""
    text, tree = _tree(workspace)
    current = arch_mapping(workspace)
    if arch in current:
        if current[arch] == (module, cls):
            return False
        raise RegistryError(f"{arch} is already registered to {current[arch]}")
    node = _arch_list(tree)
    last = node.elts[-1]
    lines = text.splitlines(keepends=True)
    entry = f'        (\n            "{arch}",\n            ("{module}", "{cls}"),\n        ),\n'
    insert_at = last.end_lineno  # the line after the last entry's closing "(...)," line
    lines.insert(insert_at, entry)
    (workspace / REGISTRY).write_text("".join(lines), encoding="utf-8")
    ast.parse((workspace / REGISTRY).read_text(encoding="utf-8"))
    if arch_mapping(workspace).get(arch) != (module, cls):
        raise RegistryError(f"writing {arch} into {REGISTRY} did not register it")
    return True


def add_custom_config(workspace: Path, model_type: str, module: str, cls: str) -> bool:
    text, tree = _tree(workspace)
    value = _assigned(tree, "_CUSTOM_CONFIG_REGISTRATIONS")
    if not isinstance(value, ast.Dict):
        raise RegistryError(f"{REGISTRY}: _CUSTOM_CONFIG_REGISTRATIONS is not a dict literal")
    if model_type in custom_configs(workspace):
        return False
    lines = text.splitlines(keepends=True)
    lines.insert(value.values[-1].end_lineno, f'    "{model_type}": ("{module}", "{cls}"),\n')
    (workspace / REGISTRY).write_text("".join(lines), encoding="utf-8")
    return model_type in custom_configs(workspace)
