"""Lower layers never import upward: the whiteboard's "never" list, checked on every import.

Faces (agent/cli, agent/service, agent/nightly) → graph (agent/graph) → {LLM loop (agent/llm), targets,
tools, sandboxes}; targets → tools, sandboxes; tools → sandboxes; sandboxes → nothing of ours. The
in-sandbox programs (sandboxes/targets/*/verify.py, sandboxes/site/) are data to the backends, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tests import TESTS

ROOT = TESTS.parent
FACES = ("agent.cli", "agent.service", "agent.nightly")
# (importer prefix, forbidden prefixes, why)
RULES = [
    ("tools", ("agent",), "tools know nothing of the graph or the faces"),
    ("tools.targets", ("agent",), "targets are used by the graph, never the other way"),
    ("sandboxes", ("agent", "tools", "prompts"), "sandbox backends know nothing of onboarding"),
    ("agent.graph", FACES, "the graph is driven by the faces"),
    ("agent.llm", (*FACES, "agent.graph"), "the LLM loop is used by the graph"),
    ("prompts", ("agent", "tools", "sandboxes"), "prompts are files plus a renderer"),
]
IN_SANDBOX = ("sandboxes.targets", "sandboxes.site")  # programs that run inside; nobody imports them
ALLOWED: set[tuple[str, str]] = set()  # (importer module, imported module): empty, and staying empty


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _sources() -> list[Path]:
    return sorted(p for top in ("agent", "tools", "sandboxes", "prompts") for p in (ROOT / top).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in _sources():
        mod = _module(path)
        for imported in _imports(path):
            if (mod, imported) in ALLOWED:
                continue
            for prefix, forbidden, why in RULES:
                if _under(mod, prefix) and any(_under(imported, f) for f in forbidden):
                    found.append(f"{mod} imports {imported}: {why}")
            if any(_under(imported, s) for s in IN_SANDBOX) and not any(_under(mod, s) for s in IN_SANDBOX):
                found.append(f"{mod} imports {imported}: in-sandbox programs are data, never imported")
    return sorted(set(found))


def test_no_layer_imports_upward():
    assert ALLOWED == set()
    assert violations() == []


@pytest.mark.parametrize("source, imported", [
    ("tools/x.py", "agent.graph.state"), ("sandboxes/x.py", "tools.repo.workspace"),
    ("agent/graph/x.py", "agent.cli.main"), ("tools/targets/x.py", "agent.graph.build"),
])
def test_the_rules_catch_an_upward_import(tmp_path, monkeypatch, source, imported):
    # The walker itself must see a violation when one is planted, or an empty result proves nothing.
    planted = ROOT / source
    assert not planted.exists()
    monkeypatch.setattr("tests.test_layering._sources", lambda: [planted])
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: f"import {imported}\n")
    assert any(imported in v for v in violations())
