"""Whether the export traced a loop over the experts its dummy input happened to reach (runs inside the sandbox).

OpenVINO converts a PyTorch model by tracing it once on dummy inputs. An experts forward that loops in
Python over the experts the router picked (`for expert in expert_hit:`) is recorded as the loop it ran:
the graph computes only the experts the dummy tokens reached and drops every token routed elsewhere.
A tiny model whose dummy input happens to reach all of its experts exports exactly and passes parity;
the same code on other weights, or on a real model with hundreds of experts, does not. The tracer says
so: it warns "Iterating over a tensor" at the loop. A warning raised inside the forward of a module of
the expert layer (the experts module or the MoE block holding it) fails the expert check.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings

try:  # as the sandbox runs it
    import experts
except ImportError:  # imported by the project's tests
    from sandboxes.targets.optimum_intel import experts

LOOP = "Iterating over a tensor"


@contextlib.contextmanager
def recorded():
    """Record every warning raised inside the block (the export), then show each distinct one once, as the
    default filter would have."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    shown = set()
    for w in caught:
        if (key := (str(w.message), w.category, w.filename, w.lineno)) not in shown:
            shown.add(key)
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _forward_lines(cls) -> tuple[str, int, int] | None:
    """(file, first line, last line) of the class's own forward, or None when it has no readable source."""
    forward = cls.__dict__.get("forward")
    if forward is None:
        return None
    try:
        lines, first = inspect.getsourcelines(forward)
        return os.path.realpath(inspect.getsourcefile(forward)), first, first + len(lines) - 1
    except (OSError, TypeError):
        return None


def expert_layer_classes(model) -> list[type]:
    """Classes of the experts modules (by name, or a `*Experts` class as GraniteMoe's) and of the modules
    that hold them (where older MoE blocks loop)."""
    found: dict[type, None] = {}
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if experts.is_experts_module(name, module):
            found[type(module)] = None
            if "." in name:
                found[type(modules[name.rsplit(".", 1)[0]])] = None
    return list(found)


def traced_loops(model, caught) -> list[str]:
    """'Class.forward line N' for each tracer loop warning raised inside an expert layer's forward."""
    spans = {cls.__name__: span for cls in expert_layer_classes(model) if (span := _forward_lines(cls))}
    hits = []
    for w in caught:
        if LOOP not in str(w.message):
            continue
        where = os.path.realpath(w.filename)
        for name, (path, first, last) in spans.items():
            if where == path and first <= w.lineno <= last and (label := f"{name}.forward line {w.lineno}") not in hits:
                hits.append(label)
    return hits
