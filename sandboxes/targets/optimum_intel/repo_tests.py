"""The repository's own tests of one model: every selected file in ONE pytest process.

A pytest process per test file paid the interpreter start, the torch / OpenVINO / optimum-intel
imports and the collection of utils_tests (which resolves every tiny model) once per file; one
process pays them once. Each file still gets its own check, read from pytest's `-rA` summary.
Standard library only: this runs inside the sandbox image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# "-rA" short summary lines: "PASSED file.py::Class::test", "FAILED file.py::test - why",
# "ERROR file.py - ImportError" (collection), "SKIPPED [1] file.py:12: why"
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(?:\[\d+\]\s+)?(\S+)")
COUNT_KEY = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "XFAIL": "xfailed", "XPASS": "xpassed",
             "SKIPPED": "skipped"}


def _file_of(ref: str) -> str:
    return re.split(r"::|:\d", ref, maxsplit=1)[0]


def parse(stdout: str) -> dict[str, dict]:
    """{test file name: {"counts": {...}, "passed": [node ids], "failed": [node ids]}} from `-rA` output."""
    out: dict[str, dict] = {}
    for line in stdout.splitlines():
        m = OUTCOME.match(line)
        if not m:
            continue
        kind, ref = m.groups()
        entry = out.setdefault(_file_of(ref), {"counts": {}, "passed": [], "failed": []})
        key = COUNT_KEY[kind]
        entry["counts"][key] = entry["counts"].get(key, 0) + 1
        if kind == "PASSED":
            entry["passed"].append(ref)
        elif kind in ("FAILED", "ERROR"):
            entry["failed"].append(ref)
    return out


HERE = Path(__file__).resolve().parent


def command(files: list[str]) -> list[str]:
    # -x: a model the tests refuse is refused at its first failure, as with one process per file.
    # -p warm_cli: the tests' `optimum-cli` commands run in this (warm) process, see warm_cli.py.
    # -p onboard_gc: the imports' objects are frozen before the tests, so each export's gc.collect() is cheap.
    return [sys.executable, "-m", "pytest", *files, "-p", "onboard_select", "-p", "warm_cli", "-p", "onboard_gc", "-q",
            "-p", "no:cacheprovider", "-x", "--no-header", "-rA"]


def run(ws: Path, test_files: list[str], model_type: str, check, scratch: Path | None = None
        ) -> tuple[list[dict], dict]:
    """Checks `tests:<file>` (one per file) and timings {"tests": s} of one pytest run over all files."""
    cli_log = Path(tempfile.mkdtemp(prefix="onboard-cli-", dir=scratch)) / "cli.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ONBOARD_SELECT_MODEL": model_type,
           "ONBOARD_WARM_CLI_LOG": str(cli_log),
           "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)}
    paths = [ws / f for f in test_files]
    parents = {p.parent for p in paths}
    cwd = parents.pop() if len(parents) == 1 else ws
    t = time.monotonic()
    res = subprocess.run(command([str(p.relative_to(cwd)) for p in paths]), cwd=cwd, env=env,
                         capture_output=True, text=True)
    seconds = time.monotonic() - t
    per_file = parse(res.stdout)
    in_process = cli_log.read_text().splitlines() if cli_log.exists() else []
    shutil.rmtree(cli_log.parent, ignore_errors=True)
    tail = (res.stdout + res.stderr).strip().splitlines()[-40:]
    # pytest's "E   " lines say why a test failed; the tail is mostly warnings
    errors = [line[1:].strip() for line in res.stdout.splitlines() if line.startswith("E ")][:20]
    stopped_early = res.returncode != 0 and any(e["failed"] for e in per_file.values())
    checks = []
    for test_file, path in zip(test_files, paths):
        rel = str(path.relative_to(cwd))
        entry = per_file.get(rel, {"counts": {}, "passed": [], "failed": []})
        counts = entry["counts"]
        ran = counts.get("passed", 0) + counts.get("failed", 0) + counts.get("error", 0)
        detail = f"pytest {test_file} (tests of {model_type}): " + ", ".join(f"{v} {k}" for k, v in counts.items())
        # PYTEST_CURRENT_TEST names tests relative to the rootdir, -rA relative to the cwd
        warm = [ln for ln in in_process if f"/{_file_of(ln.split(chr(9))[1])}".endswith(f"/{rel}")]
        if warm:
            detail += f" ({len(warm)} optimum-cli command(s) of its tests run in the test process)"
        metrics = dict(counts=counts, cli_in_process=warm, returncode=res.returncode, errors=errors,
                       tail="\n".join(tail[-25:]),
                       passed_ids=[f"{Path(test_file).parent}/{cwd_rel}" if cwd != ws else cwd_rel
                                   for cwd_rel in entry["passed"]][:50])
        if ran == 0 and stopped_early:
            # -x stopped the run at another file's failure: this file's tests did not run
            checks.append(check(f"tests:{test_file}", "skipped", detail + "; not run: pytest -x stopped at a "
                                "failure in another file", **metrics))
            continue
        ok = not entry["failed"] and counts.get("passed", 0) > 0 and (res.returncode == 0 or stopped_early)
        if ran == 0:
            ok, detail = False, detail + " (selection ran no test)"
        if errors and entry["failed"]:
            detail += f": {errors[-1][:300]}"
        checks.append(check(f"tests:{test_file}", "passed" if ok else "failed", detail, **metrics))
    return checks, {"tests": seconds}
