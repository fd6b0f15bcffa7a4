"""Where an onboarding inserts its lines, so that PRs made on the same upstream revision merge cleanly.

Git merges two branches that insert at different places of a file, with at least one unchanged line
between them; it stops at two insertions at the same place. Appending to the end of an unsorted table,
or inserting the config class right after a base class that many models follow, puts every PR at the
same place. So each entry goes right after the existing entry with the greatest model type below its
own (in a sorted table: its sorted place), and each config class right after the registered class,
at or below its base, with the greatest model type below its own: two PRs collide only when no
existing model type sorts between theirs.
"""

from __future__ import annotations

import ast
from typing import Any

from tools.source.literals import Target, insert_element, literal_keys
from tools.source.python_edit import Edit, Src


def _name(element: Any) -> str | None:
    """The model type an element stands for: the string, or the last string of a tuple entry."""
    if isinstance(element, str):
        return element
    if isinstance(element, tuple):
        return next((e for e in reversed(element) if isinstance(e, str)), None)
    return None


def entry_anchor(keys: list[Any], new: Any) -> Any | None:
    """The existing element to insert `new` after, or None (no smaller name: the table's own order)."""
    name = _name(new)
    if name is None:
        return None
    below = [(n, i) for i, k in enumerate(keys) if not isinstance(k, Src) and (n := _name(k)) is not None and n < name]
    if not below:
        return None
    return keys[max(below)[1]]  # the greatest name; of equal names (one per task), the last entry


def insert_entry(text: str, target: Target, element: Any, value: Any = None) -> Edit:
    """insert_element, placed after entry_anchor (see the module doc)."""
    anchor = entry_anchor(literal_keys(text, target), element)
    if anchor is None:
        return insert_element(text, target, element, value)
    return insert_element(text, target, element, value, after=anchor)


def class_anchor(tree: ast.Module, base_class: str, model_type: str,
                 registrations: dict[str, list[tuple[str, list[str]]]]) -> str:
    """The top-level class the new config class follows: it must come after its base (Python needs
    the base defined first), and among the registered classes from the base on, after the one whose
    greatest registered model type below `model_type` is the greatest; else right after the base."""
    names = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    if base_class not in names:
        return base_class
    best: tuple[str, int] | None = None
    for i, cls in enumerate(names[names.index(base_class):], start=names.index(base_class)):
        below = [mt for mt, _ in registrations.get(cls, []) if mt < model_type]
        if below and (best is None or (max(below), i) > best):
            best = (max(below), i)
    return names[best[1]] if best else base_class
