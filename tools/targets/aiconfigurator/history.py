"""aiconfigurator's own history as a test set: which commits onboarded a model, and how ours compares.

An onboarding commit maps a new architecture to a family in sdk/common.py (the reference scan of
tools.repo.references finds them) and packages the checkpoint's config.json under model_configs/:
that packaged config is what the bench onboards from (its file name, Org--Model, is the checkpoint
id). The comparison: the family the architecture was mapped to, the files touched, and upstream's
own test files run against our change in the target environment.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from unidiff import PatchSet

from tools.repo.git_safe import open_gitdir
from tools.targets.base import Agreement, HistoryCase, JobContext, PassedOver

PACKAGED = re.compile(r"(^|/)model_configs/([\w.-]+)--([\w.-]+)_config\.json$")
UPSTREAM_TEST = re.compile(r"^tests/.*test_\w+\.py$")
# More new architectures than this in one commit is a refactor (e.g. the --hf_id rework moved the map).
BULK = 6


def history_cases(mirror: Path, profile, cache_dir: Path) -> tuple[list[HistoryCase], list[PassedOver]]:
    from tools.repo.references import find_additions

    repo = open_gitdir(mirror)
    cases, passed = [], []
    for add in find_additions(mirror, profile, cache_dir):
        def skip(reason: str) -> None:
            passed.append(PassedOver(sha=add.sha, subject=add.subject, model_types=add.model_types, reason=reason))

        if not repo.commit(add.sha).parents:
            skip("the first commit: no earlier state to onboard from")
            continue
        if len(add.model_types) > BULK:
            skip(f"maps {len(add.model_types)} architectures at once: a refactor, not one model's onboarding")
            continue
        archs = {t.split(":", 1)[0]: t.split(":", 1)[1] for t in add.model_types}
        found = _packaged_config(repo, add.sha, archs)
        if found is None:
            skip("packages no config.json for the architectures it maps: nothing to onboard from")
            continue
        rel, hf_id, raw = found
        arch = raw["architectures"][0]
        out = cache_dir / "history" / "aiconfigurator" / add.sha[:12]
        out.mkdir(parents=True, exist_ok=True)
        # The checkpoint id is an input of the request (Org/Model), not part of the answer.
        raw.setdefault("_name_or_path", hf_id)
        if isinstance(raw.get("text_config"), dict):
            raw["text_config"].setdefault("_name_or_path", hf_id)
        (out / "config.json").write_text(json.dumps(raw, indent=2))
        cases.append(HistoryCase(model=str(out / "config.json"), model_type=raw.get("model_type") or arch,
                                 sha=add.sha, subject=add.subject, pr=add.pr, timestamp=add.timestamp,
                                 also_added=[a for a in archs if a != arch],
                                 facts={"architecture": arch, "family": archs[arch], "hf_id": hf_id,
                                        "packaged": rel}))
    return cases, passed


def _packaged_config(repo, sha: str, archs: dict[str, str]) -> tuple[str, str, dict] | None:
    """(path, checkpoint id, config) of the first config the commit added whose architecture it mapped."""
    names = repo.git.show("--name-status", "--format=", "--no-renames", sha).splitlines()
    for line in names:
        status, _, rel = line.partition("\t")
        m = PACKAGED.search(rel)
        if status != "A" or not m:
            continue
        try:
            raw = json.loads(repo.git.show(f"{sha}:{rel}"))
        except ValueError:
            continue
        if isinstance(raw, dict) and (raw.get("architectures") or [None])[0] in archs:
            return rel, f"{m.group(2)}/{m.group(3)}", raw
    return None


def strip(workspace: Path, case: HistoryCase, mirror: Path) -> str | None:
    """HEAD without the commit's architectures: their family-map and text-config-key entries, the
    checkpoint's packaged config and default-model line, and the lines the commit added to tests/
    where they still are. The family's own code stays (it may serve other architectures)."""
    from tools.repo.history import unapply_added_lines
    from tools.targets.aiconfigurator import registry as regmod

    try:
        sdk = regmod.sdk_root(workspace)
    except regmod.RegistryError:
        return None
    archs = {case.facts["architecture"], *case.also_added}
    hf_id = case.facts.get("hf_id", "")
    common = workspace / sdk / "common.py"
    keep = [ln for ln in common.read_text(encoding="utf-8").splitlines(keepends=True)
            if not (re.match(r'\s*"(\w+)":', ln) and re.match(r'\s*"(\w+)":', ln).group(1) in archs)
            and not (hf_id and re.fullmatch(rf'\s*"{re.escape(hf_id)}",?\s*(#.*)?', ln.rstrip("\n")))]
    common.write_text("".join(keep), encoding="utf-8")
    notes = [f"HEAD without {', '.join(sorted(archs))} in the family map"]
    for configs in regmod.CONFIGS_DIRS:
        packaged = workspace / configs / f"{hf_id.replace('/', '--')}_config.json"
        if hf_id and packaged.is_file():
            packaged.unlink()
            notes.append(f"{packaged.name} removed")
    done, kept = unapply_added_lines(workspace, mirror, case.sha, ("tests/",))
    if done:
        notes.append(f"its test lines taken out of {len(done)} files")
    if kept:
        notes.append(f"kept as at HEAD (changed since): {', '.join(kept[:5])}" + (" …" if len(kept) > 5 else ""))
    return "; ".join(notes)


def base_problem(workspace: Path, marker: str) -> str | None:
    if not (workspace / marker).is_file():
        return f"the revision predates the layout this target reads ({marker})"
    return None


def touched(diff: str) -> set[str]:
    return {f.path for f in PatchSet(diff)}


def _family(tree: Path, arch: str) -> str:
    """The family `arch` is mapped to: only the map is read (an S3 scaffold may leave the parser unreadable)."""
    import ast

    from tools.targets.aiconfigurator import registry as regmod

    try:
        source = (tree / regmod.sdk_root(tree) / "common.py").read_text(encoding="utf-8")
        node = regmod._assigned(ast.parse(source), "ARCHITECTURE_TO_MODEL_FAMILY")
        return regmod._str_dict(node, "ARCHITECTURE_TO_MODEL_FAMILY").get(arch, "")
    except (regmod.RegistryError, OSError, SyntaxError, UnicodeDecodeError):
        return ""


def compare(case: HistoryCase, ours: Path, upstream: Path, our_diff: str, upstream_diff: str, run_tests
            ) -> list[Agreement]:
    arch = case.facts["architecture"]
    mine, theirs = _family(ours, arch), _family(upstream, arch) or case.facts.get("family", "")
    rows = [Agreement(point="family", agree=bool(mine) and mine == theirs, ours=mine, upstream=theirs,
                      how="" if mine == theirs else (f"we map {arch} to {mine}, upstream to {theirs}" if mine
                                                    else f"we mapped {arch} to no family"))]
    of, uf = touched(our_diff), touched(upstream_diff)
    rows.append(Agreement(point="files", agree=of == uf, ours=str(len(of)), upstream=str(len(uf)),
                          how=_set_diff(of, uf)))
    files = sorted(p for p in uf if UPSTREAM_TEST.match(p) and (upstream / p).is_file())
    if not files:
        rows.append(Agreement(point="upstream_tests", agree=None, how="upstream's change added no test file"))
        return rows
    for rel in files:
        (ours / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upstream / rel, ours / rel)
    check = run_tests(files)
    rows.append(Agreement(point="upstream_tests", agree=check.status == "passed", ours=check.detail[:160],
                          upstream=", ".join(Path(f).name for f in files),
                          how="" if check.status == "passed" else check.detail[:300]))
    return rows


def _set_diff(ours: set[str], upstream: set[str], limit: int = 8) -> str:
    parts = []
    for label, items in (("only ours", ours - upstream), ("only upstream", upstream - ours)):
        if items:
            shown = sorted(items)
            more = f" (+{len(shown) - limit} more)" if len(shown) > limit else ""
            parts.append(f"{label}: {', '.join(shown[:limit])}{more}")
    return "; ".join(parts)
