"""The repository's tests of a model run in one pytest process, with one check per test file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from sandboxes.targets.optimum_intel import repo_tests, verify
from tools.targets.sandbox_job import SITE


def _workspace(tmp_path: Path, second_fails: bool = False) -> Path:
    d = tmp_path / "ws" / "tests" / "openvino"
    d.mkdir(parents=True)
    record = textwrap.dedent(f"""
        import json, os

        def _seen(name):
            with open({str(tmp_path / 'pids.jsonl')!r}, "a") as f:
                f.write(json.dumps([name, os.getpid()]) + "\\n")
        """)
    (d / "test_decoder.py").write_text(record + textwrap.dedent("""
        def test_compare_cwm():
            _seen("decoder")

        def test_compare_llama():
            raise AssertionError("another model's test must be deselected")
        """))
    (d / "test_export.py").write_text(record + textwrap.dedent(f"""
        def test_export_cwm():
            _seen("export")
            assert {not second_fails}, "export refused"
        """))
    return tmp_path / "ws"


def _run(ws, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(SITE))
    report = verify.tests({"workspace": str(ws), "model_type": "cwm",
                           "tests": ["tests/openvino/test_decoder.py", "tests/openvino/test_export.py"]})
    return report["checks"], report["timings"]


def test_every_test_file_runs_in_one_process_with_a_check_each(tmp_path, monkeypatch):
    checks, timings = _run(_workspace(tmp_path), monkeypatch)
    seen = [json.loads(line) for line in (tmp_path / "pids.jsonl").read_text().splitlines()]
    assert [name for name, _ in seen] == ["decoder", "export"]
    assert len({pid for _, pid in seen}) == 1  # one interpreter for both files
    assert [(c["name"], c["status"]) for c in checks] == [("tests:tests/openvino/test_decoder.py", "passed"),
                                                          ("tests:tests/openvino/test_export.py", "passed")]
    assert checks[0]["metrics"]["passed_ids"] == ["tests/openvino/test_decoder.py::test_compare_cwm"]
    assert checks[1]["metrics"]["counts"] == {"passed": 1} and set(timings) == {"tests"}


def test_a_failing_file_fails_its_own_check_only(tmp_path, monkeypatch):
    checks, _ = _run(_workspace(tmp_path, second_fails=True), monkeypatch)
    by_name = {c["name"].rsplit("/", 1)[1]: c for c in checks}
    assert by_name["test_decoder.py"]["status"] == "passed"
    assert by_name["test_export.py"]["status"] == "failed"
    assert "1 failed" in by_name["test_export.py"]["detail"]
    assert any("export refused" in e for e in by_name["test_export.py"]["metrics"]["errors"])


def test_a_file_selecting_nothing_fails():
    checks = repo_tests.parse("PASSED test_a.py::test_x\nSKIPPED [1] test_b.py:3: no GPU\nERROR test_c.py - ImportError\n")
    assert checks["test_a.py"]["passed"] == ["test_a.py::test_x"]
    assert checks["test_b.py"]["counts"] == {"skipped": 1}
    assert checks["test_c.py"]["failed"] == ["test_c.py"]


def test_the_tests_optimum_cli_commands_run_in_the_test_process(tmp_path, monkeypatch):
    """test_exporters_cli starts optimum-cli through subprocess.run(shell=True): warm_cli runs it in-process,
    a failing command still raises CalledProcessError, and a command with shell syntax is left to the shell."""
    d = tmp_path / "ws" / "tests" / "openvino"
    d.mkdir(parents=True)
    (d / "test_exporters_cli.py").write_text(textwrap.dedent("""
        import subprocess
        import pytest

        def test_exporters_cli_cwm():
            subprocess.run("optimum-cli export openvino --help", shell=True, check=True)
            with pytest.raises(subprocess.CalledProcessError):
                subprocess.run("optimum-cli export openvino --no-such-option x", shell=True, check=True)
            assert subprocess.run("echo optimum-cli | cat", shell=True, check=True).returncode == 0
        """))
    (tmp_path / "ws" / "setup.cfg").write_text("[tool:pytest]\n")  # rootdir: the repository, as upstream
    monkeypatch.setenv("PYTHONPATH", str(SITE))
    checks, _ = repo_tests.run(tmp_path / "ws", ["tests/openvino/test_exporters_cli.py"], "cwm", verify._check)
    assert checks[0]["status"] == "passed", checks[0]["metrics"]["tail"]
    warm = [line.split("\t") for line in checks[0]["metrics"]["cli_in_process"]]
    assert [(w[0], w[2]) for w in warm] == [("ok", "export openvino --help"),
                                            ("failed", "export openvino --no-such-option x")]
    assert warm[0][1] == "tests/openvino/test_exporters_cli.py::test_exporters_cli_cwm"
    assert "2 optimum-cli command(s)" in checks[0]["detail"]
