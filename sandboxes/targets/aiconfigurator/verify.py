"""The in-sandbox job of aiconfigurator (`python verify.py spec.json`): prove an onboarding change.

Runs in the target's own environment (aiconfigurator's release from the package index). The workspace's
Python source is what is tested: its core package is laid over the release in /out/overlay (links to the
workspace's files plus the release's compiled engine extension, which cannot be built here), so every
import of aiconfigurator_core resolves to the patched code. Stdlib only besides aiconfigurator.
Prints one JSON line: {"checks": [...]} with stage build (parser, MoE), compare (estimate) or tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

CORE = "aic-core/src/aiconfigurator_core"
LATENCY = re.compile(r"^\s*(TTFT|TPOT):\s*([0-9.]+)\s*ms", re.M)
PATTERN_NAMES = {1: "full_attention", 0: "sliding_attention"}  # HybridMoEConfig.attn_layer_pattern


def check(name, ok, stage, detail, metrics=None, skipped=False):
    status = "skipped" if skipped else ("passed" if ok else "failed")
    return {"name": name, "status": status, "stage": stage, "detail": detail[:1500], "metrics": metrics or {}}


def overlay(workspace: Path, out: Path) -> tuple[Path, str]:
    """The workspace's core package with the release's engine extension beside it, as links."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.origin:
        raise RuntimeError("aiconfigurator_core is not installed in this environment")
    ext = sorted(Path(spec.origin).parent.glob("_aiconfigurator_core*.so"))
    if not ext:
        raise RuntimeError("the installed aiconfigurator_core has no compiled engine extension")
    src = workspace / CORE
    if not (src / "sdk" / "common.py").is_file():
        raise RuntimeError(f"the workspace has no {CORE}/sdk (a checkout from before the core split?)")
    pkg = out / "overlay" / "aiconfigurator_core"
    pkg.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name == "__pycache__" or entry.suffix == ".so":
            continue
        link = pkg / entry.name
        if not link.is_symlink():
            link.symlink_to(entry)
    if not (pkg / ext[0].name).is_symlink():
        (pkg / ext[0].name).symlink_to(ext[0])
    return pkg.parent, ext[0].name


def parser_checks(model_dir: Path, spec: dict) -> list[dict]:
    from aiconfigurator_core.sdk.models.helpers import check_is_moe
    from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

    try:
        info = get_model_config_from_model_path(str(model_dir))
    except Exception as exc:  # the parser's own error is the finding
        return [check("parser", False, "build", f"{type(exc).__name__}: {exc}")]
    wrong = {k: (info.get(k), v) for k, v in spec["expected"].items() if info.get(k) != v}
    extra = info.get("extra_params")
    got = None
    if hasattr(extra, "layer_types"):
        got = {t: list(extra.layer_types).count(t) for t in dict.fromkeys(extra.layer_types)}
    elif hasattr(extra, "attn_layer_pattern"):
        pat = list(extra.attn_layer_pattern)
        got = {PATTERN_NAMES[v]: pat.count(v) for v in dict.fromkeys(pat)}
    want = spec["layer_counts"]
    if want and got != want:
        wrong["layer pattern"] = (got, want)
    detail = "; ".join(f"{k}: parsed {g!r}, config says {w!r}" for k, (g, w) in wrong.items()) or \
        f"{len(spec['expected'])} fields" + (f" and layer pattern {want}" if want else "") + " as the config states"
    out = [check("parser", not wrong, "build", detail,
                 {"family_extra_params": type(extra).__name__ if extra is not None else None})]
    try:
        is_moe = bool(check_is_moe(str(model_dir)))
        out.append(check("moe_family", is_moe == spec["is_moe"], "build",
                         f"check_is_moe={is_moe}, the config is {'MoE' if spec['is_moe'] else 'dense'}"))
    except Exception as exc:
        out.append(check("moe_family", False, "build", f"check_is_moe raised {type(exc).__name__}: {exc}"))
    return out


def estimate(model_dir: Path, spec: dict, env: dict, out: Path) -> dict:
    tried = []
    for mode in spec["database_modes"]:
        cmd = [sys.executable, "-m", "aiconfigurator.main", "cli", "estimate", "--model-path", str(model_dir),
               *spec["estimate_args"], "--database-mode", mode]
        t = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out, timeout=600)
        except subprocess.TimeoutExpired:
            tried.append(f"{mode}: timed out")
            continue
        (out / f"estimate-{mode}.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
        found = dict(LATENCY.findall(proc.stdout))
        if proc.returncode == 0 and "TTFT" in found and "TPOT" in found:
            metrics = {"ttft_ms": float(found["TTFT"]), "tpot_ms": float(found["TPOT"]), "database_mode": mode,
                       "args": " ".join(spec["estimate_args"]), "seconds": round(time.monotonic() - t, 1)}
            return check("estimate", True, "compare", f"{mode}: TTFT {found['TTFT']} ms, TPOT {found['TPOT']} ms "
                         f"({' '.join(spec['estimate_args'])})" + (f"; before: {'; '.join(tried)}" if tried else ""),
                         metrics)
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        tried.append(f"{mode}: exit {proc.returncode}: {last[:300]}")
    return check("estimate", False, "compare", "; ".join(tried))


def repo_tests(workspace: Path, spec: dict, env: dict, out: Path) -> dict:
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q",
           f"--junitxml={junit}", *spec["tests"]]
    for node in spec["deselect"]:
        cmd += ["--deselect", node]
    t = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workspace, timeout=3000)
    (out / "pytest.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
    if not junit.is_file():
        tail = " ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        return check("repo_tests", False, "tests", f"pytest exit {proc.returncode}, no report: {tail[-500:]}")
    counts, failed = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}, []
    for case in ET.parse(junit).getroot().iter("testcase"):
        counts["tests"] += 1
        for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            if case.find(kind) is not None:
                counts[key] += 1
                if key != "skipped":
                    failed.append(f"{case.get('classname')}::{case.get('name')}")
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    metrics = {**counts, "passed": passed, "deselected": sorted(spec["deselect"]),
               "seconds": round(time.monotonic() - t, 1)}
    detail = (f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, {counts['skipped']} skipped; "
              f"{len(spec['deselect'])} deselected by name (Hub downloads, engine-version contract)")
    if failed:
        detail += "; failed: " + ", ".join(failed[:10])
    ok = proc.returncode == 0 and not failed and passed > 0
    return check("repo_tests", ok, "tests", detail, metrics)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    workspace, out = Path(spec["workspace"]), Path(spec["out_dir"])
    model_dir = out / "model"
    checks, timings = [], {}
    try:
        root, ext = overlay(workspace, out)
    except (RuntimeError, OSError) as exc:
        print(json.dumps({"checks": [check("environment", False, "build", str(exc))]}))
        return
    sys.path[:0] = [str(root), str(workspace / "src")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(workspace / "src"),
                                                        os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    t = time.monotonic()
    checks += parser_checks(model_dir, spec)
    timings["parser"] = round(time.monotonic() - t, 2)
    if checks[0]["status"] == "passed":
        t = time.monotonic()
        checks.append(estimate(model_dir, spec, env, out))
        timings["estimate"] = round(time.monotonic() - t, 2)
    else:
        checks.append(check("estimate", False, "compare", "not run: the parser check failed", skipped=True))
    if spec.get("run_tests"):
        t = time.monotonic()
        checks.append(repo_tests(workspace, spec, env, out))
        timings["tests"] = round(time.monotonic() - t, 2)
    print(json.dumps({"checks": checks, "timings": timings, "engine_extension": ext}))


if __name__ == "__main__":
    main(sys.argv[1])
