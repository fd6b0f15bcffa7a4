"""The deterministic edits of an S1/S2 onboarding, as text insertions the repository's style would make.

Each function takes the workspace, changes one thing and returns the relative path it wrote; positions
come from `ast` (registry.py), so formatting elsewhere in the file is untouched.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tools.targets.aiconfigurator import registry as regmod
from tools.targets.aiconfigurator.families import ParserPlan
from tools.targets.aiconfigurator.registry import Registry

HF_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}", re.ASCII)


def _node(source: str, name: str) -> ast.expr:
    node = regmod._assigned(ast.parse(source), name)
    if node is None:
        raise regmod.RegistryError(f"common.py has no {name}")
    return node


def _insert_lines(path: Path, after_line: int, new: list[str]) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[after_line:after_line] = [ln + "\n" for ln in new]
    path.write_text("".join(lines))


def add_dict_entry(ws: Path, reg: Registry, name: str, key: str, value: str, near_value: str | None) -> str:
    """`"key": "value",` after the last entry with the same value (the family's block), else at the end."""
    path = ws / reg.common
    node = _node(path.read_text(), name)
    assert isinstance(node, ast.Dict)
    if any(isinstance(k, ast.Constant) and k.value == key for k in node.keys):
        return reg.common
    same = [v.end_lineno for v in node.values if isinstance(v, ast.Constant) and v.value == near_value]
    after = same[-1] if same else node.values[-1].end_lineno
    _insert_lines(path, after, [f"    {json.dumps(key)}: {json.dumps(value)},"])
    return reg.common


def add_default_model(ws: Path, reg: Registry, hf_id: str) -> str:
    """The id in DefaultHFModels, then the module's own invariant re-checked: retired ⊆ default."""
    path = ws / reg.common
    node = _node(path.read_text(), "DefaultHFModels")
    if hf_id not in regmod._strings(node):
        _insert_lines(path, node.end_lineno - 1, [f"    {json.dumps(hf_id)},"])
    after = regmod.read(ws)
    if not after.retired_models <= after.default_models:  # `assert Retired <= DefaultHFModels` at import
        raise regmod.RegistryError("RetiredSupportMatrixHFModels is not a subset of DefaultHFModels: "
                                   + ", ".join(sorted(after.retired_models - after.default_models)))
    return reg.common


def config_file_name(hf_id: str) -> str:
    org, model = hf_id.split("/", 1)
    return f"{org}--{model}_config.json"


def write_config(ws: Path, reg: Registry, hf_id: str, config: dict) -> str:
    rel = f"{reg.configs_dir}/{config_file_name(hf_id)}"
    (ws / rel).parent.mkdir(parents=True, exist_ok=True)
    (ws / rel).write_text(json.dumps(config, indent=2) + "\n")
    return rel


def _set_literal(archs: list[str]) -> str:
    return "{" + ", ".join(json.dumps(a) for a in archs) + "}"


def join_branch(ws: Path, reg: Registry, arch: str, plan: ParserPlan) -> str:
    """The architecture added to the test of the closest branch: its body already reads every field."""
    b = plan.branch
    path = ws / reg.utils
    lines = path.read_text().splitlines(keepends=True)
    head = lines[b.start - 1]
    keyword = "elif" if head.lstrip().startswith("elif") else "if"
    indent = head[: len(head) - len(head.lstrip())]
    lines[b.start - 1: b.test_end] = [f"{indent}{keyword} architecture in {_set_literal(b.archs + [arch])}:\n"]
    path.write_text("".join(lines))
    return reg.utils


def new_branch(ws: Path, reg: Registry, arch: str, plan: ParserPlan) -> str:
    """A branch for `arch` modelled on the closest one: its body, after the config is normalised to the
    form that body reads (a scalar layer interval expanded into the per-layer list)."""
    b = plan.branch
    path = ws / reg.utils
    head = path.read_text().splitlines()[b.start - 1]
    indent = head[: len(head) - len(head.lstrip())]
    inner = indent + "    "
    new = [f"{indent}elif architecture == {json.dumps(arch)}:",
           f"{inner}# {arch}: the layer mix of the {b.archs[0]} branch; its config gives the",
           f"{inner}# layer pattern as a scalar interval, expanded here into the per-layer list that body reads."]
    for key, (nth, other) in plan.normalise.items():
        new += [f"{inner}if not isinstance(config.get(\"layer_types\"), list) and config.get({json.dumps(key)}):",
                f"{inner}    interval = int(config[{json.dumps(key)}])",
                f"{inner}    config = {{",
                f"{inner}        **config,",
                f"{inner}        \"layer_types\": [",
                f"{inner}            {json.dumps(nth)} if (i + 1) % interval == 0 else {json.dumps(other)} "
                f"for i in range(layers)",
                f"{inner}        ],",
                f"{inner}    }}"]
    new += b.body.splitlines()
    _insert_lines(path, b.end, new)
    return reg.utils


def _py(value) -> str:
    """A Python literal in the file's style: double-quoted strings (json spells them so), repr otherwise."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                                  for v in value)):
        return json.dumps(value)
    return repr(value)


def parser_test(ws: Path, arch: str, config: dict, expected: dict, layer_counts: dict[str, int],
                extra_attr: str | None) -> str:
    """A test class in tests/unit/sdk/test_utils.py, in that file's style: a config dict, the parser, asserts."""
    rel = "tests/unit/sdk/test_utils.py"
    path = ws / rel
    name = re.sub(r"\W", "", arch)
    if not path.is_file() or f"class TestParse{name}Config" in path.read_text():
        return rel if path.is_file() else ""
    cfg = ",\n".join(f"            {json.dumps(k)}: {_py(v)}" for k, v in config.items())
    asserts = [f"        assert result[{json.dumps(k)}] == {_py(v)}" for k, v in expected.items()]
    if extra_attr and layer_counts:
        asserts.append(f"        layer_types = result[\"extra_params\"].{extra_attr}")
        asserts += [f"        assert layer_types.count({json.dumps(t)}) == {n}" for t, n in layer_counts.items()]
    text = "\n".join([
        "", "",
        f"class TestParse{name}Config:",
        f"    \"\"\"{arch}: the fields the estimate reads, parsed from its config.json.\"\"\"",
        "",
        f"    def test_parse_{name.lower()}_config(self):",
        "        config = {",
        cfg + ",",
        "        }",
        "",
        "        result = _parse_hf_config_json(config)",
        "",
        *asserts,
        "",
    ])
    path.write_text(path.read_text().rstrip("\n") + "\n" + text)
    return rel
