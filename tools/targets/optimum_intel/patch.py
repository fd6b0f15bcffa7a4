"""Write an optimum-intel model onboarding into a workspace, following the repository's conventions.

One call registers the export config next to the class it follows, takes the type off the ONNX fallback
list, documents it, and registers it in the decoder tests under a Hub id with its tiny config, which the
shared fallback (fixture.py) builds locally, so the targeted tests run without the Hub. Every edit is additive and idempotent; what the workspace lacks (a source
distribution has no tests/ or docs/) is skipped with a note.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from tools.source.python_edit import Edit, EditError, edit_file, insert_block, insert_bullet, top_level_names
from tools.source.literals import literal_keys, remove_element
from tools.targets.optimum_intel.placement import class_anchor
from tools.targets.optimum_intel.patterns.edit import MODEL_PATCHER, insert_import, insert_in_function
from tools.targets.optimum_intel.patterns.join import FILES as FAMILY_FILES, join_family

MODEL_CONFIGS = "optimum/exporters/openvino/model_configs.py"
UTILS = "optimum/exporters/openvino/utils.py"
DOCS = "docs/source/openvino/models.mdx"
TESTS = "tests/openvino"
UTILS_TESTS = f"{TESTS}/utils_tests.py"
INT8_TABLE = "_ARCHITECTURES_TO_EXPECTED_INT8"
DEFAULT_TASKS = ["text-generation", "text-generation-with-past"]
# the transformers auto mapping that must know a model for the task to be exportable
_TASK_MAPPINGS = {
    "feature-extraction": "MODEL_MAPPING_NAMES", "text-generation": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "text-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "token-classification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "question-answering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "image-text-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
}


class PatcherBlock(BaseModel):
    """A patcher class a pattern adds to model_patcher.py, right after the class it subclasses."""

    name: str
    after: str
    source: str


class ModuleBlock(BaseModel):
    """A top-level definition a pattern adds to a workspace module, right after the definition `after`."""

    file: str
    after: str
    source: str


class CodeBlock(BaseModel):
    """Statements a pattern inserts into a function (or `Class.method`) of a workspace module, after the
    statement calling `after_call`; `marker` is text only the inserted block holds (the edit's idempotence)."""

    file: str
    function: str
    after_call: str
    source: str
    marker: str


class PatchSpec(BaseModel):
    model_type: str
    base_class: str
    min_transformers_version: str
    display_name: str
    tiny_config: dict
    expected_sdpa: int | None
    class_attrs: dict[str, str] = Field(default_factory=dict)
    # what the patterns add besides class attributes: (module, name) imports into model_configs.py (names
    # it already has are left alone) and patcher classes for model_patcher.py
    imports: list[tuple[str, str]] = Field(default_factory=list)
    patchers: list[PatcherBlock] = Field(default_factory=list)
    # model types whose family lists the new type joins (patterns/join.py)
    joins: list[str] = Field(default_factory=list)
    # int8 weights per exported submodel, e.g. {"model": 16}: test_exporters_cli's int8 test needs it for
    # every model registered there, so without it that file is left alone
    expected_int8: dict[str, int] | None = None
    # tokenizer models optimum-cli converts: test_exporters_cli's tokenizer test needs it for a task without past
    expected_tokenizers: int | None = None
    # verification measured that transformers' cached generate() departs from the model's own uncached forward
    # (sandboxes/targets/optimum_intel/cache_probe.py): the decoder tests compare generation with use_cache=False
    compare_uncached: bool = False
    # verification measured transformers' default attention non-causal where eager is causal
    # (cache_probe.causality): the decoder tests load their transformers reference with eager attention
    eager_reference: bool = False
    # False on the first write, before verification has measured the two counts above: their absence is
    # then expected, not worth a note (the write after the export fills them in)
    measured: bool = True
    # more model types the new class is registered for (a composite family's text sub-model), and the tasks
    # to register when the base's would not fit (None: the base's)
    also_registers: list[str] = Field(default_factory=list)
    tasks: list[str] | None = None
    module_blocks: list[ModuleBlock] = Field(default_factory=list)
    code_blocks: list[CodeBlock] = Field(default_factory=list)
    # methods of the new config class: each the source of a def, written into the class body
    methods: list[str] = Field(default_factory=list)
    # the exported cache holds recurrent states but no conv state: the decoder test's conv check exempts it
    no_conv_state: bool = False


class PatchResult(BaseModel):
    files: list[str]  # files carrying the change, written now or by an earlier identical call
    notes: list[str]
    skipped: list[str]
    changed: list[str] = Field(default_factory=list)  # files written by this call


def config_class_name(model_type: str, taken: set[str] = frozenset()) -> str:
    """Upstream style: seed_oss -> SeedOssOpenVINOConfig, hunyuan_v1_dense -> HunyuanV1DenseOpenVINOConfig."""
    caps = [p[:1].upper() + p[1:] for p in re.split(r"[^0-9A-Za-z]+", model_type) if p]
    for stem in ["".join(caps), "_".join(caps)] + [f"{''.join(caps)}{k}" for k in range(2, 10)]:
        if f"{stem}OpenVINOConfig" not in taken:
            return f"{stem}OpenVINOConfig"
    raise ValueError(f"no free config class name for {model_type}")


# -- model_configs.py ---------------------------------------------------------------------------------

def _registrations(tree: ast.Module) -> dict[str, list[tuple[str, list[str]]]]:
    """class name -> [(model_type, tasks)] from its @register_in_tasks_manager decorators."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for node in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "register_in_tasks_manager" \
                    and deco.args and isinstance(deco.args[0], ast.Constant):
                tasks: list[str] = []
                for arg in deco.args[1:]:
                    try:
                        value = ast.literal_eval(arg.value if isinstance(arg, ast.Starred) else arg)
                    except ValueError:
                        continue  # built at runtime: unknown here
                    tasks += [value] if isinstance(value, str) else list(value)
                out.setdefault(node.name, []).append((deco.args[0].value, tasks))
    return out


def _class_chain(tree: ast.Module, name: str) -> list[ast.ClassDef]:
    """The class and its ancestors defined in the same module, nearest first."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    chain, todo = [], [name]
    while todo:
        cls = classes.get(todo.pop(0))
        if cls is not None and cls not in chain:
            chain.append(cls)
            todo += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return chain


def _module_names(text: str) -> set[str]:
    """Names a module defines or imports at top level."""
    imports = [n for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return top_level_names(text) | {(a.asname or a.name).split(".")[0] for n in imports for a in n.names}


@lru_cache(maxsize=1)
def _transformers_model_types() -> dict[str, frozenset[str]]:
    """{MAPPING_NAME: model types}, read from transformers' auto-model source (importing it takes seconds)."""
    found = importlib.util.find_spec("transformers")
    if found is None or found.origin is None:
        return {}
    out = {}
    for node in ast.parse((Path(found.origin).parent / "models/auto/modeling_auto.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args \
                and getattr(node.targets[0], "id", "").endswith("_MAPPING_NAMES"):
            try:
                out[node.targets[0].id] = frozenset(k for k, _ in ast.literal_eval(node.value.args[0]))
            except (ValueError, TypeError):
                continue
    return out


def _tasks_for(model_type: str, tasks: list[str], notes: list[str]) -> list[str]:
    """The base's tasks minus those transformers has no model class for with this model_type."""
    known = _transformers_model_types()
    if not any(model_type in known.get(m, ()) for m in ("MODEL_MAPPING_NAMES", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES")):
        return tasks  # this transformers does not know the model: nothing to judge by
    dropped = [t for t in tasks if (m := _TASK_MAPPINGS.get(t.removesuffix("-with-past"))) in known
               and model_type not in known[m]]
    if dropped:
        notes.append(f"not registered for {', '.join(dropped)} (tasks of the base): transformers has no such "
                     f"model class for {model_type}")
    return [t for t in tasks if t not in dropped]


def _version_notes(spec: PatchSpec, chain: list[ast.ClassDef], notes: list[str]) -> None:
    caps = [ast.literal_eval(s.value) for c in chain for s in c.body if isinstance(s, ast.Assign)
            and any(getattr(t, "id", "") == "MAX_TRANSFORMERS_VERSION" for t in s.targets)
            and isinstance(s.value, ast.Constant)]
    if "MAX_TRANSFORMERS_VERSION" in spec.class_attrs:  # the new class's own value is the nearest
        caps.insert(0, ast.literal_eval(spec.class_attrs["MAX_TRANSFORMERS_VERSION"].strip()))
    try:
        installed = Version(metadata.version("transformers"))
        # the nearest class decides: `MAX_TRANSFORMERS_VERSION = None` lifts an inherited cap
        if caps and caps[0] is not None and installed > Version(str(caps[0])):
            notes.append(f"{spec.base_class} caps transformers at {caps[0]} (MAX_TRANSFORMERS_VERSION), inherited "
                         f"by the new class: installed {installed} is above it, so export and tests refuse it")
        if installed < Version(spec.min_transformers_version):
            notes.append(f"installed transformers {installed} is below MIN_TRANSFORMERS_VERSION "
                         f"{spec.min_transformers_version}: the version-filtered tests will not select the model")
    except (metadata.PackageNotFoundError, InvalidVersion) as exc:
        notes.append(f"transformers versions not compared ({exc})")


def _registration_block(spec: PatchSpec, name: str, tasks: list[str], defined: set[str]) -> str:
    body = [f'    MIN_TRANSFORMERS_VERSION = "{spec.min_transformers_version}"']
    for attr, source in spec.class_attrs.items():
        try:
            expr = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"class attribute {attr}: {source!r} is not an expression") from exc
        missing = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} - defined - set(dir(builtins))
        if not attr.isidentifier() or missing:
            raise ValueError(f"class attribute {attr!r}: bad name or undefined names {sorted(missing)}")
        body.append(f"    {attr} = {source.strip()}")
    task_lines = "".join(f'        "{t}",\n' for t in tasks)
    decorators = "".join(f'@register_in_tasks_manager(\n    "{mt}",\n    *[\n{task_lines}    ],\n'
                         f'    library_name="transformers",\n)\n' for mt in [spec.model_type, *spec.also_registers])
    for method in spec.methods:
        tree = ast.parse(method)
        if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
            raise ValueError(f"a config class method must be one def, not {method[:60]!r}")
        body.append("")
        body.append("\n".join(f"    {line}" if line.strip() else "" for line in method.rstrip().splitlines()))
    return decorators + f'class {name}({spec.base_class}):\n' + "\n".join(body) + "\n"


def _register_config(workspace: Path, spec: PatchSpec, result: PatchResult) -> list[str]:
    """Add the export config class after its base; returns the tasks the model is registered for."""
    path = workspace / MODEL_CONFIGS
    if not path.exists():
        raise FileNotFoundError(f"{MODEL_CONFIGS} not found in {workspace}: is this optimum-intel?")
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    regs = _registrations(tree)
    owner = next((c for c, rs in regs.items() if any(mt == spec.model_type for mt, _ in rs)), None)
    if owner is not None:
        result.files.append(MODEL_CONFIGS)
        result.notes.append(f"{spec.model_type} is already registered by {owner}: registration left as it is")
        return next(t for mt, t in regs[owner] if mt == spec.model_type)
    chain = _class_chain(tree, spec.base_class)
    if not chain:
        raise ValueError(f"base class {spec.base_class} not found in {MODEL_CONFIGS}")
    tasks = next(([t for _, ts in regs[c.name] for t in ts] for c in chain if regs.get(c.name)), None)
    if not tasks:
        result.notes.append(f"no readable registration for {spec.base_class} or its bases: using {DEFAULT_TASKS}")
    tasks = _tasks_for(spec.model_type, list(dict.fromkeys(spec.tasks or tasks or DEFAULT_TASKS)), result.notes)
    _version_notes(spec, chain, result.notes)
    names = _module_names(text)
    block = _registration_block(spec, config_class_name(spec.model_type, names), tasks, names)
    anchor = class_anchor(tree, spec.base_class, spec.model_type, regs)
    _record(result, MODEL_CONFIGS, edit_file(path, insert_block, block, after=anchor))
    return tasks


# -- helpers ------------------------------------------------------------------------------------------

def _record(result: PatchResult, rel: str, edit: Edit) -> Edit:
    if rel not in result.files:
        result.files.append(rel)
    if edit.changed and rel not in result.changed:
        result.changed.append(rel)
    return edit


def _try(result: PatchResult, workspace: Path, rel: str, func, *args, **kwargs) -> Edit | None:
    """One optional edit: a missing table or an unsafe splice is skipped with its reason, not fatal."""
    try:
        return _record(result, rel, edit_file(workspace / rel, func, *args, **kwargs))
    except (LookupError, EditError) as exc:
        result.skipped.append(f"{rel}: {func.__name__} {args[0] if args else ''}: {exc}")
        return None


def _keys(path: Path, target: str) -> list | None:
    """The keys of a literal table, None when the file or the table is missing."""
    try:
        return literal_keys(path.read_text(encoding="utf-8"), target)
    except (OSError, LookupError, EditError):
        return None


def _join_families(workspace: Path, spec: PatchSpec, result: PatchResult, files: tuple[str, ...]) -> None:
    for reference in spec.joins:
        for rel in files:
            if (workspace / rel).exists():
                edit = _try(result, workspace, rel, join_family, reference, spec.model_type)
                if edit is not None and edit.changed:
                    result.notes.append(f"{rel}: {edit.message}")


# -- pattern code -------------------------------------------------------------------------------------

def _write_pattern_code(workspace: Path, spec: PatchSpec, result: PatchResult) -> None:
    """Patchers and imports the registration's class attributes refer to; written first so the
    registration block's names check finds them. Unlike the optional edits, a failure here is fatal:
    a config class naming a patcher that is not there would not import."""
    if not spec.imports and not spec.patchers and not spec.module_blocks and not spec.code_blocks:
        return
    configs = workspace / MODEL_CONFIGS
    if not configs.exists():
        raise FileNotFoundError(f"{MODEL_CONFIGS} not found in {workspace}: is this optimum-intel?")
    owned = any(mt == spec.model_type for rs in _registrations(ast.parse(configs.read_text("utf-8"))).values()
                for mt, _ in rs)
    if owned:
        return  # _register_config leaves an existing registration alone, so nothing would use them
    for block in spec.patchers:
        _record(result, MODEL_PATCHER, edit_file(workspace / MODEL_PATCHER, insert_block, block.source,
                                                 after=block.after))
    for module, name in spec.imports:
        if name not in _module_names(configs.read_text(encoding="utf-8")):
            _record(result, MODEL_CONFIGS, edit_file(configs, insert_import, module, name))
    for block in spec.module_blocks:
        _record(result, block.file, edit_file(workspace / block.file, insert_block, block.source, after=block.after))
    for code in spec.code_blocks:
        _record(result, code.file, edit_file(workspace / code.file, insert_in_function, code.function,
                                             code.after_call, code.source, code.marker))


# -- entry point --------------------------------------------------------------------------------------

def write_patch(workspace: Path, spec: PatchSpec) -> PatchResult:
    """Onboard `spec.model_type` into the optimum-intel checkout at `workspace`."""
    workspace = Path(workspace)
    result = PatchResult(files=[], notes=[], skipped=[])
    _write_pattern_code(workspace, spec, result)
    tasks = _register_config(workspace, spec, result)
    _join_families(workspace, spec, result, tuple(f for f in FAMILY_FILES if not f.startswith(f"{TESTS}/")))
    if spec.model_type in (_keys(workspace / UTILS, "ONNX_SUPPORTED_ARCHITECTURES") or []):
        _try(result, workspace, UTILS, remove_element, "ONNX_SUPPORTED_ARCHITECTURES", spec.model_type)
    docs = workspace / DOCS
    if not docs.exists():
        result.notes.append(f"{DOCS} absent in workspace: documentation skipped")
    elif not any(ln.startswith("#") and "Transformers" in ln for ln in docs.read_text(encoding="utf-8").splitlines()):
        result.skipped.append(f"{DOCS}: no Transformers section: not documented")
    else:
        section = "[Transformers]" if "[Transformers]" in docs.read_text(encoding="utf-8") else "Transformers"
        _try(result, workspace, DOCS, insert_bullet, spec.display_name, section=section)
    if not (workspace / TESTS).is_dir():
        result.notes.append("tests/ absent in workspace: test registrations skipped")
    elif "text-generation-with-past" not in tasks and "text-generation" in tasks:
        # a decoder without a KV cache (patterns/no_cache.py) has tests of its own
        from tools.targets.optimum_intel.test_edits import register_fixture
        from tools.targets.optimum_intel.test_edits_no_cache import register_no_cache_tests

        if register_fixture(workspace, spec, result):
            register_no_cache_tests(workspace, spec, result)
    elif "text-generation-with-past" not in tasks:
        result.skipped.append(f"tests: {spec.model_type} is not registered for text-generation-with-past")
    else:
        # the repository's tests import this module's helpers: imported here, not at the top
        from tools.targets.optimum_intel.test_edits import register_fixture, register_tests

        if register_fixture(workspace, spec, result):
            _join_families(workspace, spec, result, tuple(f for f in FAMILY_FILES if f.startswith(f"{TESTS}/")))
            register_tests(workspace, spec, result)
    return result
