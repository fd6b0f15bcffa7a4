"""The repository's own tests of a model: every selected file in ONE pytest process, one check per file.

A pytest process per file paid the interpreter start and the torch / nemo_automodel imports once per
file (six files: about 40 s of a 78 s verification); the repository's CI, and the reproduce command
in the PR body, run them in one process anyway. The per-file verdict comes from the JUnit report
(`junit_family=xunit1` records each test's file). Standard library only: this runs in the sandbox.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUTCOMES = ("failure", "error", "skipped")


def command(selections: list[str], junit: Path) -> list[str]:
    # --continue-on-collection-errors: one file that does not import fails alone, as it did in its
    # own process, instead of stopping every other file's tests.
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cpu", "-o", "addopts=",
            "-o", "junit_family=xunit1", f"--junitxml={junit}", "--continue-on-collection-errors", *selections]


def per_file(junit: Path) -> dict[str, dict[str, int]]:
    """{test file: {"passed": n, "failed": n, "error": n, "skipped": n}} from a JUnit report."""
    counts: dict[str, dict[str, int]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in OUTCOMES]
        kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[kinds[0]] if kinds else "passed"
        # A collection error has no file attribute; its classname is the dotted module path.
        name = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        entry = counts.setdefault(name, {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
        entry[kind] += 1
    return counts


def run(workspace: str, selections: list[str], out_dir: str, check, timeout_s: float = 1500) -> list[dict]:
    """One check `tests:<selection>` per selected file; a file that ran no test fails (as exit 5 did)."""
    junit = Path(out_dir) / "junit-tests.xml"
    try:
        proc = subprocess.run(command(selections, junit), cwd=workspace, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return [check(f"tests:{sel}", False, f"pytest did not finish in {timeout_s:.0f} s") for sel in selections]
    tail = (proc.stdout.strip().splitlines() or [""])[-1][:300]
    (Path(out_dir) / "pytest.log").write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
    if not junit.is_file():
        return [check(f"tests:{sel}", False, f"pytest exit {proc.returncode}, no report: {tail}",
                      exit_code=proc.returncode) for sel in selections]
    counts = per_file(junit)
    checks = []
    for sel in selections:
        c = counts.get(sel, {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
        ran = c["passed"] + c["failed"] + c["error"]
        ok = ran > 0 and c["failed"] == 0 and c["error"] == 0
        detail = ", ".join(f"{n} {k}" for k, n in c.items() if n) or "no test ran"
        checks.append(check(f"tests:{sel}", ok, f"{detail} (one pytest process: {tail})",
                            exit_code=proc.returncode, counts=c))
    return checks
