"""Loaded by every Python process of a verification job (it is first on PYTHONPATH).

The sandbox's environment has the target installed (e.g. optimum-intel) and the
job puts the patched workspace in front of it. Modules then resolve to the
workspace, but PEP 420 namespace directories merge both copies: optimum's CLI
walks every `optimum/commands/register` directory and registers the
`openvino` command twice ("conflicting subparser"). For each namespace named
in ONBOARD_WORKSPACE_ONLY we keep only the workspace's directory, so the
patched code is the only code that registers anything.
"""

import os


def _workspace_only() -> None:
    workspace = os.environ.get("ONBOARD_WORKSPACE")
    names = [n for n in os.environ.get("ONBOARD_WORKSPACE_ONLY", "").split(",") if n]
    if not workspace or not names:
        return
    import importlib

    for name in names:
        local = os.path.join(workspace, *name.split("."))
        if not os.path.isdir(local):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "__file__", None) is None:  # a namespace package: its path is ours to narrow
            module.__path__ = [local]
            if module.__spec__ is not None:
                module.__spec__.submodule_search_locations = [local]


_workspace_only()
