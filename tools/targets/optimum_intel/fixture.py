"""The tiny test models of an onboarding, laid out so that many PRs merge without conflicts.

Upstream's test tables name each model by a Hub id under its testing organisation
(utils_tests.HUB_MODEL_NAMES). An onboarding adds, per model, only new lines and a new file:
its `"<type>": "<org>/tiny-random-<type>"` entry and `tiny_model_configs/<type>.json` (Hub id, seed,
config). The builder itself, `tiny_random_models.py` (script: build, and with credentials upload;
`with_local_fallbacks`: offline, build what the Hub cache lacks), and the two lines that hook it into
utils_tests are shared: written only where missing, as one commit whose id depends on its content
alone (`shared_commit`), so every PR built on the same upstream revision carries the same commit.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

from tools.source.python_edit import Edit, EditError

TESTS = "tests/openvino"
UTILS_TESTS = f"{TESTS}/utils_tests.py"
HELPER = f"{TESTS}/tiny_random_models.py"
CONFIGS = f"{TESTS}/tiny_model_configs"
HELPER_SOURCE = (Path(__file__).parent / "upstream" / "tiny_random_models.py").read_text(encoding="utf-8")
HOOK_IMPORT = "from tiny_random_models import with_local_fallbacks"
HOOK = ("# Hub ids with a config in tiny_model_configs/ that are not in the local Hub cache (offline, or not\n"
        "# uploaded yet) resolve to the same tiny model built locally (tiny_random_models.py)\n"
        "MODEL_NAMES = with_local_fallbacks(MODEL_NAMES)\n")
DEFAULT_ORG = "optimum-intel-internal-testing"
SEED = 42
# The shared commit: fixed author (workspace.commit_all), message and date, so its id is the same in every PR.
SHARED_DATE = "2026-01-01T00:00:00+00:00"
SHARED_MESSAGE = ("[OpenVINO] tests: build tiny random test models from their config when the Hub has none\n\n"
                  "tests/openvino/tiny_random_models.py builds (and, with --push, uploads) the tiny model of\n"
                  "tests/openvino/tiny_model_configs/<model_type>.json; utils_tests.MODEL_NAMES falls back to it\n"
                  "when the Hub id is not in the local cache. Shared by every model PR that adds a config.\n\n"
                  "Onboarder-Shared: tiny-random-models")


def config_path(model_type: str) -> str:
    return f"{CONFIGS}/{re.sub(r'[^0-9A-Za-z_.-]', '_', model_type)}.json"


def testing_org(hub_ids: list[str]) -> str:
    """The organisation most of the table's tiny models live under (upstream: optimum-intel-internal-testing)."""
    orgs = Counter(v.split("/")[0] for v in hub_ids if isinstance(v, str) and v.count("/") == 1
                   and "tiny" in v.split("/")[1].lower())
    return orgs.most_common(1)[0][0] if orgs else DEFAULT_ORG


def hub_id(model_type: str, org: str) -> str:
    return f"{org}/tiny-random-{re.sub(r'[^0-9A-Za-z_.-]', '-', model_type)}"


def config_entry(hub: str, config: dict) -> str:
    """tiny_model_configs/<type>.json: the Hub id the tests name, the seed, and the config (as JSON)."""
    return json.dumps({"hub_id": hub, "seed": SEED, "config": config}, indent=2) + "\n"


def insert_hook(text: str) -> Edit:
    """Import the fallback after the module's imports; apply it right after the last `MODEL_NAMES = …`."""
    if HOOK_IMPORT in text:
        return Edit(False, text, "fallback already hooked into utils_tests")
    body = ast.parse(text).body
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assigns = [n for n in body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "MODEL_NAMES" for t in n.targets)]
    if not imports or not assigns:
        raise EditError("utils_tests has no top-level imports or no `MODEL_NAMES = …` to follow")
    lines = text.split("\n")
    at_assign, at_import = assigns[-1].end_lineno, imports[-1].end_lineno
    if at_assign <= at_import:
        raise EditError("MODEL_NAMES is assigned before the last import")
    lines[at_assign:at_assign] = HOOK.rstrip("\n").split("\n")
    lines[at_import:at_import] = ["", HOOK_IMPORT]
    return Edit(True, "\n".join(lines), "tiny-model fallback hooked into utils_tests", line=at_import + 1)
