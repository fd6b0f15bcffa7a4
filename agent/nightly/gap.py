"""What transformers can build that the target's workspace does not register yet.

The primary gap is text generation (a causal-LM class in transformers' auto
mappings); other tasks' gaps are reported alongside so maintainers see them,
but the sweep only tries the primary one. The registry is always the
workspace's (the code a PR would patch), never an installed package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel, Field

PRIMARY_TASK = "text-generation"
# task -> transformers.models.auto.modeling_auto mapping; feature-extraction
# (MODEL_MAPPING_NAMES, every model) is left out: as a gap it says nothing.
TASK_MAPPINGS = {
    "text-generation": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "image-text-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "text2text-generation": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "automatic-speech-recognition": "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "fill-mask": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "text-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
}


class TaskGap(BaseModel):
    task: str
    known: int  # model types transformers maps for this task
    missing: list[str] = Field(default_factory=list)
    # "task" when the target says which tasks each type registers, else "type"
    # (a registered type counts as supported for every task).
    granularity: str = "type"


class Gap(BaseModel):
    target: str
    transformers_version: str
    primary: TaskGap
    others: list[TaskGap] = Field(default_factory=list)
    supported: int = 0

    @property
    def types(self) -> list[str]:
        return self.primary.missing


def transformers_mappings(tasks=TASK_MAPPINGS) -> dict[str, dict[str, object]]:
    """task -> {model_type: class name(s)}, read from transformers' source when possible.

    Importing modeling_auto imports torch (and scikit-learn): 10 s on a busy
    2-core machine, which a sweep that skips everything must not pay. The
    mappings are literal OrderedDicts, so parsing the file gives the same data.
    """
    static = _static_mappings(set(tasks.values()))
    if all(name in static for name in tasks.values()):
        return {task: static[name] for task, name in tasks.items()}
    from transformers.models.auto import modeling_auto

    return {task: dict(getattr(modeling_auto, name, {})) for task, name in tasks.items()}


def _auto_file(name: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "auto" / name


def _static_mappings(names: set[str], file: str = "modeling_auto.py") -> dict[str, dict]:
    """`NAME = OrderedDict([...])` literals of a transformers auto module, without importing it."""
    path = _auto_file(file)
    try:
        tree = ast.parse(path.read_text()) if path else None
    except (OSError, SyntaxError):
        tree = None
    if tree is None:
        return {}
    found: dict[str, dict] = {}
    for node in tree.body:
        if isinstance(node, (ast.AugAssign, ast.Expr)) and any(n in ast.unparse(node) for n in names):
            return {}  # mutated after definition: only the import knows the result
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in names and isinstance(node.value, ast.Call) and len(node.value.args) == 1):
            continue
        func = node.value.func
        func = func.value if isinstance(func, ast.Subscript) else func  # OrderedDict[str, str](...)
        if getattr(func, "id", "") != "OrderedDict":
            continue
        try:
            found[node.targets[0].id] = dict(ast.literal_eval(node.value.args[0]))
        except ValueError:
            continue
    return found


def config_aliases(types: list[str], supported: set[str]) -> dict[str, str]:
    """type -> supported type built with the same config class (code_llama -> llama).

    transformers builds such a type's config as the other type's, so onboarding it
    would find it already registered: the sweep says so without starting a job.
    """
    classes = _static_mappings({"CONFIG_MAPPING_NAMES"}, "configuration_auto.py").get("CONFIG_MAPPING_NAMES")
    if classes is None:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES as classes
    by_class: dict[str, str] = {}
    for s in sorted(supported):
        if s in classes and classes[s] not in by_class:
            by_class[classes[s]] = s
    return {t: by_class[classes[t]] for t in types
            if t in classes and classes[t] in by_class and by_class[classes[t]] != t}


def transformers_version() -> str:
    from importlib import metadata

    return metadata.version("transformers")


def _task_gap(task: str, mapping: dict, supported: set[str]) -> TaskGap:
    missing = sorted(t for t in mapping if t not in supported)
    return TaskGap(task=task, known=len(mapping), missing=missing, granularity="type")


def discover(target, workspace: Path, mappings: dict[str, dict] | None = None) -> Gap:
    """The gap of `target` at `workspace`; `mappings` (task -> {model_type: class}) defaults to transformers'."""
    mappings = transformers_mappings() if mappings is None else mappings
    supported = set(target.supported_types(workspace))
    primary_map = mappings.get(PRIMARY_TASK, {})
    # The primary gap is the target's own: what a sweep should try (its registry, its baselines).
    primary = TaskGap(task=PRIMARY_TASK, known=len(primary_map), missing=target.gap(workspace, mappings))
    others = [_task_gap(task, m, supported) for task, m in mappings.items() if task != PRIMARY_TASK]
    return Gap(target=target.key, transformers_version=transformers_version(), primary=primary,
               others=others, supported=len(supported))


def select(gap: Gap, only: list[str] | None, causal: dict[str, object] | None = None) -> list[str]:
    """The types to consider: the whole primary gap, or `only` (which must be causal-LM types)."""
    if not only:
        return list(gap.types)
    from tools.errors import UserError

    if causal is None:
        causal = transformers_mappings({PRIMARY_TASK: TASK_MAPPINGS[PRIMARY_TASK]})[PRIMARY_TASK]
    unknown = [t for t in only if t not in causal]
    if unknown:
        raise UserError(f"not a model type with a causal-LM class in transformers {gap.transformers_version}: "
                        f"{', '.join(unknown)}")
    seen: list[str] = []
    for t in only:
        if t not in seen:
            seen.append(t)
    return seen
