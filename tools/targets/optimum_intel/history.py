"""optimum-intel's own history as a test set: which commits onboarded a model, and how ours compares.

An onboarding commit registers a new model type in model_configs.py (the reference scan of
tools.repo.references finds them); the bench replays those whose registration has a text-generation
task and whose type transformers can build as a causal LM: that is what our onboarding makes. The
comparison reads both trees: the family followed (the base of a newly written config class, or the
class reused), the tasks registered, the files touched, and upstream's own test files for the model
run against our change.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from unidiff import PatchSet

from tools.repo.git_safe import open_gitdir
from tools.targets.base import Agreement, HistoryCase, JobContext, PassedOver

MODEL_CONFIGS = "optimum/exporters/openvino/model_configs.py"
UTILS = "optimum/exporters/openvino/utils.py"
# More new registrations than this in one commit is a refactor (e.g. the ONNX list turned into classes).
BULK = 8
TEXT_TASKS = {"text-generation", "text-generation-with-past"}
UPSTREAM_TEST = re.compile(r"^tests/openvino/test_\w+\.py$")
CLASS = re.compile(r"^class (\w+)\(([^)]*)\)")
TIMEOUT = re.compile(r"job ended with timeout|\btimed out\b")
NETWORK = re.compile(r"ConnectionError|Max retries exceeded|LocalEntryNotFoundError|offline mode", re.IGNORECASE)
# Our tiny model is not upstream's Hub checkpoint: the model-name table stays ours (a local fixture).
OUR_TEST_SUPPORT = ("tests/openvino/utils_tests.py",)


def _show(repo, rev: str, path: str) -> str:
    try:
        return repo.git.show(f"{rev}:{path}")
    except Exception:  # noqa: BLE001 - a file the revision does not have reads as empty
        return ""


def registrations(source: str) -> dict[str, tuple[str, list[str]]]:
    """model_type -> (config class, tasks) of a model_configs.py source."""
    from tools.targets.optimum_intel.patch import _registrations

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, tuple[str, list[str]]] = {}
    for cls, regs in _registrations(tree).items():
        for model_type, tasks in regs:
            out.setdefault(model_type, (cls, tasks))
    return out


def _causal_lm_types() -> tuple[set[str], str]:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), transformers.__version__


def history_cases(mirror: Path, profile, cache_dir: Path) -> tuple[list[HistoryCase], list[PassedOver]]:
    from tools.repo.references import find_additions

    repo = open_gitdir(mirror)
    causal, tf_version = _causal_lm_types()
    cases, passed = [], []
    for add in find_additions(mirror, profile, cache_dir):
        after = registrations(_show(repo, add.sha, MODEL_CONFIGS))
        before = set(registrations(_show(repo, f"{add.sha}^", MODEL_CONFIGS)))
        # in the order the file registers them: a family's plain text model before its variants
        textual = [t for t in after if t in add.model_types and TEXT_TASKS & set(after[t][1])]
        fresh = [t for t in textual if t not in before]
        usable = [t for t in fresh if t in causal]
        if not repo.commit(add.sha).parents:
            passed.append(PassedOver(sha=add.sha, subject=add.subject, model_types=add.model_types,
                                     reason="the first commit: no earlier state to onboard from"))
            continue
        if len(add.model_types) > BULK:
            passed.append(PassedOver(sha=add.sha, subject=add.subject, model_types=add.model_types,
                                     reason=f"registers {len(add.model_types)} types at once: a refactor, "
                                            "not one model's onboarding"))
            continue
        if usable:
            cases.append(HistoryCase(model=usable[0], model_type=usable[0], sha=add.sha, subject=add.subject,
                                     pr=add.pr, timestamp=add.timestamp,
                                     also_added=[t for t in add.model_types if t != usable[0]]))
            continue
        if not textual:
            reason = "registers no text-generation model (vision, audio or diffusion parts)"
        elif not fresh:
            reason = "its text-generation types were already registered at the parent"
        else:
            reason = f"transformers {tf_version} has no causal-LM class for {', '.join(fresh)}"
        passed.append(PassedOver(sha=add.sha, subject=add.subject, model_types=add.model_types, reason=reason))
    return cases, passed


# -- is a past revision usable in today's environment? ---------------------------------------------

def base_problem(workspace: Path, sandbox, work_dir: Path, workspace_only: tuple[str, ...]) -> str | None:
    """Import the revision's exporter in the target environment: a revision written for an older
    transformers/optimum fails here, before any onboarding time is spent on it."""
    from sandboxes.base import Limits, Mount
    from tools.targets.sandbox_job import SITE

    work_dir.mkdir(parents=True, exist_ok=True)
    m_ws = Mount(workspace.resolve(), "/workspace", read_only=True)
    m_site = Mount(SITE, "/site", read_only=True)
    env = {"PYTHONPATH": f"{sandbox.inside(m_site)}:{sandbox.inside(m_ws)}",
           "ONBOARD_WORKSPACE": sandbox.inside(m_ws), "ONBOARD_WORKSPACE_ONLY": ",".join(workspace_only),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    code = "import optimum.exporters.openvino.model_configs, optimum.intel.openvino.modeling_decoder"
    result = sandbox.run([sandbox.python, "-c", code], mounts=[m_ws, m_site], env=env,
                         limits=Limits(timeout_s=300))
    if result.ok and result.exit_code == 0:
        return None
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    return f"the revision does not import in the target environment: {(lines or [result.status])[-1][:200]}"


# -- HEAD without the model ---------------------------------------------------------------------

def strip(workspace: Path, case: HistoryCase, mirror: Path) -> str:
    """Take out the registrations of every type the commit registered (their classes stay: later
    registrations may build on them, and an unregistered class is no candidate), and the lines the
    commit added to tests/ and docs/ wherever they still are."""
    from tools.repo.history import unapply_added_lines

    types = {case.model_type, *case.also_added}
    path = workspace / MODEL_CONFIGS
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "register_in_tasks_manager"
                        and deco.args and isinstance(deco.args[0], ast.Constant) and deco.args[0].value in types):
                    drop.update(range(deco.lineno - 1, deco.end_lineno))
    path.write_text("".join(ln for i, ln in enumerate(lines) if i not in drop), encoding="utf-8")
    done, kept = unapply_added_lines(workspace, mirror, case.sha, ("tests/", "docs/"))
    broken = []
    for rel in done:
        if rel.endswith(".py") and (workspace / rel).is_file():
            try:
                ast.parse((workspace / rel).read_text(encoding="utf-8"))
            except SyntaxError:
                broken.append(rel)
    if broken:  # a half-removed test table: keep HEAD's version of that file
        import git

        git.Repo(workspace).git.checkout("HEAD", "--", *broken)
    notes = [f"HEAD with the registrations of {', '.join(sorted(types))} removed"]
    taken = [r for r in done if r not in broken]
    if taken:
        notes.append(f"its test/docs lines taken out of {len(taken)} files")
    if kept or broken:
        notes.append(f"kept as at HEAD (lines changed since): {', '.join(sorted(kept + broken))}")
    return "; ".join(notes)


# -- comparison -----------------------------------------------------------------------------------

def _new_classes(diff: str) -> dict[str, list[str]]:
    out = {}
    for f in PatchSet(diff):
        if f.path == MODEL_CONFIGS:
            for h in f:
                for ln in h:
                    m = CLASS.match(ln.value) if ln.is_added else None
                    if m:
                        out[m.group(1)] = [b.strip() for b in m.group(2).split(",") if b.strip()]
    return out


def family(tree: Path, diff: str, model_type: str) -> tuple[str, list[str]]:
    """(the family followed, tasks): a class the change wrote is named by its base, a reused one by itself."""
    path = tree / MODEL_CONFIGS
    regs = registrations(path.read_text(encoding="utf-8")) if path.exists() else {}
    if model_type not in regs:
        return "", []
    cls, tasks = regs[model_type]
    bases = _new_classes(diff).get(cls)
    return ((bases[0] if bases else cls), tasks)


def touched(diff: str) -> set[str]:
    return {f.path for f in PatchSet(diff)}


def compare(case: HistoryCase, ours: Path, upstream: Path, our_diff: str, upstream_diff: str, ctx: JobContext,
            run_tests) -> list[Agreement]:
    mt = case.model_type
    our_family, our_tasks = family(ours, our_diff, mt)
    up_family, up_tasks = family(upstream, upstream_diff, mt)
    rows = []
    if not our_family:
        rows.append(Agreement(point="family", agree=False, upstream=up_family, how="we registered nothing"))
    else:
        rows.append(Agreement(point="family", agree=our_family == up_family, ours=our_family, upstream=up_family,
                              how="" if our_family == up_family else f"we follow {our_family}, upstream {up_family}"))
    ot, ut = sorted(set(our_tasks)), sorted(set(up_tasks))
    rows.append(Agreement(point="tasks", agree=bool(ot) and ot == ut, ours=",".join(ot), upstream=",".join(ut),
                          how=_set_diff(set(ot), set(ut))))
    of, uf = touched(our_diff), touched(upstream_diff)
    rows.append(Agreement(point="files", agree=of == uf, ours=str(len(of)), upstream=str(len(uf)),
                          how=_set_diff(of, uf)))
    rows.append(_upstream_tests(mt, ours, upstream, upstream_diff, our_family, run_tests))
    return rows


def _set_diff(ours: set[str], upstream: set[str]) -> str:
    parts = []
    if ours - upstream:
        parts.append("only ours: " + ", ".join(sorted(ours - upstream)))
    if upstream - ours:
        parts.append("only upstream: " + ", ".join(sorted(upstream - ours)))
    return "; ".join(parts)


def _upstream_tests(mt: str, ours: Path, upstream: Path, upstream_diff: str, our_family: str,
                    run_tests) -> Agreement:
    files = sorted(p for p in touched(upstream_diff) if UPSTREAM_TEST.match(p) and (upstream / p).is_file())
    if not files:
        return Agreement(point="upstream_tests", agree=None, how="upstream's change added no test file for it")
    if not our_family:
        return Agreement(point="upstream_tests", agree=False, upstream=", ".join(files),
                         how="nothing registered to test")
    for rel in files:
        if rel not in OUR_TEST_SUPPORT:
            shutil.copyfile(upstream / rel, ours / rel)
    checks = run_tests(files)
    # A file whose selection ran none of this model's tests says nothing about our change; nor does a
    # test that needed the network (the sandbox is offline): both are named, neither is a failure.
    ran = [c for c in checks if "selection ran no test" not in c.detail]
    offline = [c for c in ran if c.status != "passed" and NETWORK.search(c.detail)]
    # A run the sandbox stopped for time proves nothing about the change either (a loaded machine).
    timed_out = [c for c in ran if c.status != "passed" and TIMEOUT.search(c.detail)]
    judged = [c for c in ran if c not in offline and c not in timed_out]
    failed = [c for c in judged if c.status != "passed"]
    counts = ", ".join(f"{Path(c.name.split(':', 1)[-1]).name}: "
                       + " ".join(f"{v} {k}" for k, v in (c.metrics.get("counts") or {}).items())
                       for c in checks)
    notes = [f"{Path(c.name.split(':', 1)[-1]).name} needs the network" for c in offline]
    notes += [f"{c.name} timed out: {c.detail[:120]}" for c in timed_out]
    if not judged:
        return Agreement(point="upstream_tests", agree=None, ours=counts, upstream=", ".join(Path(f).name for f in files),
                         how="; ".join(notes) or f"upstream's test files select no test of {mt}")
    return Agreement(point="upstream_tests", agree=not failed, ours=counts,
                     upstream=", ".join(Path(f).name for f in files),
                     how="; ".join([c.detail[:240] for c in failed] + notes))
