"""pytest plugin (`-p onboard_select`): keep the tests of one model type.

`-k <type>` is not enough: `parameterized.expand` names generated tests after
their index and first argument (`test_exporters_cli_12_text_generation_with_past`),
so the model type often appears only in the arguments. A test is kept when
ONBOARD_SELECT_MODEL is one of its parameterized arguments, or when its name
contains the model type as a whole `_`-separated word.
"""

import os
import re


def _params(fn):
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if hasattr(value, "args") and hasattr(value, "kwargs") and type(value).__name__ == "param":
            return list(value.args) + list(value.kwargs.values())
    return None


def _selected(item, model_type: str, word: re.Pattern) -> bool:
    fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    args = _params(fn) if fn is not None else None
    if args is not None:
        return model_type in [a for a in args if isinstance(a, str)]
    return bool(word.search(item.name))


def pytest_collection_modifyitems(config, items):
    model_type = os.environ.get("ONBOARD_SELECT_MODEL")
    if not model_type:
        return
    safe = re.sub(r"\W", "_", model_type)
    word = re.compile(rf"(^|_){re.escape(safe)}(_|$|\[)")
    keep, drop = [], []
    for item in items:
        (keep if _selected(item, model_type, word) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
