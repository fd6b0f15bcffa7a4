"""The edits to the repository's own tests: the tiny test model named by its Hub id (with its config for the
shared offline builder, fixture.py) and the model's entries in the test tables of test_decoder, test_export
and test_exporters_cli."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.source.python_edit import Src
from tools.targets.optimum_intel import fixture
from tools.targets.optimum_intel.patch import INT8_TABLE, TESTS, UTILS_TESTS, PatchResult, PatchSpec, _keys, \
    _module_names, _try
from tools.targets.optimum_intel.placement import insert_entry
from tools.targets.optimum_intel.test_edits_eager import eager_reference
from tools.targets.optimum_intel.test_edits_states import exempt_conv_state_check
from tools.targets.optimum_intel.test_edits_uncached import join_uncached_generation


# -- the tiny test model -------------------------------------------------------------------------------

def _string_items(text: str, table: str) -> dict[str, str]:
    """The str -> str entries of a module-level dict literal (Hub ids; computed entries are left out)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == table for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            return {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                    and isinstance(k.value, str) and isinstance(v.value, str)}
    return {}


def _ensure_shared(workspace: Path, result: PatchResult) -> bool:
    """The shared builder and its hook in utils_tests (fixture.py), written only where missing."""
    helper = workspace / fixture.HELPER
    if not helper.exists():
        if _try(result, workspace, UTILS_TESTS, fixture.insert_hook) is None:
            return False
        helper.write_text(fixture.HELPER_SOURCE, encoding="utf-8")
        result.changed.append(fixture.HELPER)
    elif fixture.HOOK_IMPORT not in (workspace / UTILS_TESTS).read_text(encoding="utf-8"):
        result.skipped.append(f"{UTILS_TESTS}: {fixture.HELPER} exists but is not hooked in: tests skipped")
        return False
    result.files.append(fixture.HELPER)
    return True


def register_fixture(workspace: Path, spec: PatchSpec, result: PatchResult) -> bool:
    """Name the model in the model-name table by its Hub id, with its config for the local fallback;
    returns whether tests can use it."""
    path = workspace / UTILS_TESTS
    table = next((t for t in ("HUB_MODEL_NAMES", "MODEL_NAMES") if _keys(path, t) is not None), None)
    entry = workspace / fixture.config_path(spec.model_type)
    if table is None:
        result.skipped.append(f"{UTILS_TESTS}: no model-name table: test registrations skipped")
        return False
    if spec.model_type in _keys(path, table) and not entry.exists():
        result.notes.append(f"{table} already names a test model for {spec.model_type}: kept")
        return True
    if not spec.tiny_config:
        result.skipped.append(f"{UTILS_TESTS}: no tiny_config for the test model: test registrations skipped")
        return False
    if not _ensure_shared(workspace, result):
        return False
    names = _string_items(path.read_text(encoding="utf-8"), table)
    hub = fixture.hub_id(spec.model_type, fixture.testing_org(list(names.values())))
    if spec.model_type not in names:
        if _try(result, workspace, UTILS_TESTS, insert_entry, table, spec.model_type, hub) is None:
            return False
    else:
        hub = names[spec.model_type]
    text = fixture.config_entry(hub, spec.tiny_config)
    if not entry.exists() or entry.read_text(encoding="utf-8") != text:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(text, encoding="utf-8")
        result.changed.append(fixture.config_path(spec.model_type))
    result.files.append(fixture.config_path(spec.model_type))
    return True


# -- test registrations -------------------------------------------------------------------------------

def _target(path: Path, cls: str, name: str) -> str:
    return f"{cls}.{name}" if _keys(path, f"{cls}.{name}") is not None else name


def register_tests(workspace: Path, spec: PatchSpec, result: PatchResult) -> None:
    mt = spec.model_type
    decoder, export, cli = (f"{TESTS}/{f}" for f in ("test_decoder.py", "test_export.py", "test_exporters_cli.py"))
    if spec.expected_int8 is not None and _keys(workspace / UTILS_TESTS, INT8_TABLE) is not None:
        _try(result, workspace, UTILS_TESTS, insert_entry, INT8_TABLE, mt, dict(spec.expected_int8))
    if (workspace / decoder).exists():
        cls = "OVModelForCausalLMIntegrationTest"
        target = _target(workspace / decoder, cls, "SUPPORTED_ARCHITECTURES")
        family = _listed_in_addends(workspace / decoder, cls, mt)
        if family:
            result.notes.append(f"{decoder}: {mt} is in {family}, which the tests add to SUPPORTED_ARCHITECTURES")
        else:
            _try(result, workspace, decoder, insert_entry, target, mt)
        if spec.eager_reference and _try(result, workspace, decoder, eager_reference, mt) is not None:
            result.notes.append(f"{decoder}: transformers' reference loaded with eager attention: its default "
                                f"attention of {mt} is not causal (measured)")
        if spec.compare_uncached and _try(result, workspace, decoder, join_uncached_generation, mt) is not None:
            result.notes.append(f"{decoder}: generation compared with transformers' use_cache=False: its cached "
                                f"generate() of {mt} departs from its own uncached forward (measured)")
        if spec.no_conv_state and _try(result, workspace, decoder, exempt_conv_state_check, mt) is not None:
            result.notes.append(f"{decoder}: {mt} exempt from the conv state check: its cache has none")
        if "get_supported_model_for_library" not in (workspace / decoder).read_text(encoding="utf-8"):
            result.notes.append(f"{decoder} does not filter by MIN/MAX_TRANSFORMERS_VERSION: entry not version-gated")
        if spec.expected_sdpa is not None:
            target = _target(workspace / decoder, cls, "EXPECTED_NUM_SDPA")
            _try(result, workspace, decoder, insert_entry, target, mt, spec.expected_sdpa)
        elif spec.measured:
            result.notes.append(f"{decoder}: SDPA count unknown, no EXPECTED_NUM_SDPA entry: "
                                "test_compare_to_transformers will expect 0 SDPA ops")
    else:
        result.skipped.append(f"{decoder}: absent")
    if not (workspace / export).exists():
        result.skipped.append(f"{export}: absent")
    elif "OVModelForCausalLM" not in _module_names((workspace / export).read_text(encoding="utf-8")):
        result.skipped.append(f"{export}: OVModelForCausalLM is not imported there: not registered")
    else:
        _try(result, workspace, export, insert_entry, _target(workspace / export, "ExportModelTest",
             "SUPPORTED_ARCHITECTURES"), mt, Src("OVModelForCausalLM"))
    if not (workspace / cli).exists():
        result.skipped.append(f"{cli}: absent")
    elif f"{INT8_TABLE}[" in (workspace / cli).read_text(encoding="utf-8") and \
            mt not in (_keys(workspace / UTILS_TESTS, INT8_TABLE) or []):
        if spec.measured:
            result.skipped.append(f"{cli}: its int8 test needs {INT8_TABLE}[{mt!r}], the int8 weight count is "
                                  "unknown (PatchSpec.expected_int8): not registered there")
    else:
        _try(result, workspace, cli, insert_entry, _target(workspace / cli, "OVCLIExportTestCase",
             "SUPPORTED_ARCHITECTURES"), ("text-generation-with-past", mt))


def _listed_in_addends(path: Path, cls: str, model_type: str) -> str | None:
    """The table of the test class that holds model_type and is added to its SUPPORTED_ARCHITECTURES
    (`SUPPORTED_ARCHITECTURES += SUPPORTED_SSM_ARCHITECTURES`), if any."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), [])
    for stmt in body:
        if isinstance(stmt, ast.AugAssign) and getattr(stmt.target, "id", "") == "SUPPORTED_ARCHITECTURES" \
                and isinstance(stmt.value, ast.Name) and model_type in (_keys(path, f"{cls}.{stmt.value.id}") or []):
            return stmt.value.id
    return None
