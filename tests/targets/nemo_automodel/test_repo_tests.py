"""NeMo AutoModel's own tests of a model run in one pytest process, and each file keeps its own verdict."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sandboxes.targets.nemo_automodel import repo_tests


def _check(name, ok, detail="", **metrics):
    return {"name": name, "status": "passed" if ok else "failed", "detail": detail, "metrics": metrics}


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    d = ws / "tests" / "unit_tests"
    d.mkdir(parents=True)
    # the repository's conftest defines --cpu; without it pytest refuses the command line
    (ws / "tests" / "conftest.py").write_text(textwrap.dedent("""
        def pytest_addoption(parser):
            parser.addoption("--cpu", action="store_true")
        """))
    pid = "import os\nPIDS = {!r}\n".format(str(tmp_path / "pids"))
    seen = "    with open(PIDS, 'a') as f: f.write(str(os.getpid()) + '\\n')\n"
    (d / "test_good.py").write_text(pid + "def test_a():\n" + seen + "def test_b():\n    pass\n")
    (d / "test_bad.py").write_text(pid + "def test_a():\n" + seen + "    assert 1 == 2\n")
    (d / "test_broken.py").write_text("import no_such_module_here\n\ndef test_a():\n    pass\n")
    (d / "test_empty.py").write_text("X = 1\n")
    return ws


def test_each_file_keeps_its_verdict_in_one_process(tmp_path):
    ws = _workspace(tmp_path)
    sels = [f"tests/unit_tests/test_{n}.py" for n in ("good", "bad", "broken", "empty")]
    checks = {c["name"]: c for c in repo_tests.run(str(ws), sels, str(tmp_path), _check)}

    assert checks["tests:tests/unit_tests/test_good.py"]["status"] == "passed"
    assert checks["tests:tests/unit_tests/test_good.py"]["metrics"]["counts"]["passed"] == 2
    assert checks["tests:tests/unit_tests/test_bad.py"]["status"] == "failed"
    # a file that does not import fails alone; the others still ran (see the pids below)
    assert checks["tests:tests/unit_tests/test_broken.py"]["status"] == "failed"
    # a file with no test is not a pass (it was exit 5 with a process per file)
    assert checks["tests:tests/unit_tests/test_empty.py"]["status"] == "failed"
    assert "no test ran" in checks["tests:tests/unit_tests/test_empty.py"]["detail"]
    pids = set((tmp_path / "pids").read_text().split())
    assert len(pids) == 1, "every file's tests must run in one pytest process"


def test_no_report_fails_every_selection(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()  # no conftest: `--cpu` is an unknown option and pytest exits before writing a report
    checks = repo_tests.run(str(ws), ["tests/test_x.py"], str(tmp_path), _check)
    assert [c["status"] for c in checks] == ["failed"]
    assert "no report" in checks[0]["detail"]
