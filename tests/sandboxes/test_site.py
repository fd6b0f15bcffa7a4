"""The verification job's site directory: the pytest selection plugin and the
sitecustomize that hides an installed copy of the target behind the workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parents[2] / "sandboxes" / "site"

TESTS = '''
import unittest
from parameterized import parameterized

ARCHS = [("text-generation-with-past", "cwm"), ("text-generation-with-past", "llama"),
         ("text-generation-with-past", "cwm_moe")]


class T(unittest.TestCase):
    @parameterized.expand(ARCHS)
    def test_cli(self, task, model_type):
        pass

    def test_cwm_fixture(self):
        pass

    def test_cwmx_other(self):
        pass

    def test_llama_only(self):
        pass
'''


def _pytest(tmp_path: Path, model: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(TESTS)
    env = {**os.environ, "PYTHONPATH": str(SITE), "ONBOARD_SELECT_MODEL": model}
    return subprocess.run([sys.executable, "-m", "pytest", "test_sample.py", "-p", "onboard_select", "-v",
                           "-p", "no:cacheprovider"], cwd=tmp_path, env=env, capture_output=True, text=True)


def test_select_plugin_keeps_parameterized_and_named_tests_of_the_type(tmp_path):
    res = _pytest(tmp_path, "cwm")
    assert res.returncode == 0, res.stdout[-2000:]
    passed = sorted(line.split("::")[-1].split()[0] for line in res.stdout.splitlines() if " PASSED" in line)
    assert passed == ["test_cli_0_text_generation_with_past", "test_cwm_fixture"]
    assert "4 deselected" in res.stdout


def test_select_plugin_selects_nothing_for_an_absent_type(tmp_path):
    res = _pytest(tmp_path, "mamba")
    assert "6 deselected" in res.stdout and res.returncode == 5  # pytest: no tests collected/selected


GC_TESTS = '''
import gc

IMPORTED_AT_COLLECTION = [object() for _ in range(1000)]


def test_what_collection_made_is_frozen_and_new_garbage_is_still_collected():
    assert gc.get_freeze_count() >= 1000
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
'''


def test_gc_plugin_freezes_what_collection_imported(tmp_path):
    (tmp_path / "test_gc.py").write_text(GC_TESTS)
    env = {**os.environ, "PYTHONPATH": str(SITE)}
    res = subprocess.run([sys.executable, "-m", "pytest", "test_gc.py", "-p", "onboard_gc", "-q", "-p",
                          "no:cacheprovider"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout[-2000:]


def _pkg(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"WHERE = {str(root)!r}\n")


def test_sitecustomize_narrows_the_namespace_to_the_workspace(tmp_path):
    installed, workspace = tmp_path / "installed", tmp_path / "workspace"
    _pkg(installed, ["ns/reg/register_x.py", "ns/core.py"])
    _pkg(workspace, ["ns/reg/register_x.py"])
    code = ("import importlib.util, ns.core, ns.reg.register_x as r\n"
            "print(list(importlib.util.find_spec('ns.reg').submodule_search_locations))\n"
            "print(r.WHERE); print(ns.core.WHERE)")
    base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SITE), str(workspace), str(installed)])}

    plain = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True)
    assert plain.stdout.splitlines()[0].count("/reg") == 2  # the duplicate the plugin exists for

    env = {**base, "ONBOARD_WORKSPACE": str(workspace), "ONBOARD_WORKSPACE_ONLY": "ns.reg"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    locations, reg_from, core_from = res.stdout.splitlines()
    assert locations == repr([str(workspace / "ns" / "reg")])
    assert reg_from == str(workspace)
    assert core_from == str(installed)  # only the named namespace is narrowed
