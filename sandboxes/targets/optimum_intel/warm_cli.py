"""pytest plugin (`-p warm_cli`): the repository's CLI tests run `optimum-cli …` in the test process.

test_exporters_cli starts `optimum-cli export openvino …` with subprocess.run(shell=True) three
times per model (plain, fp16, int8); each start imports torch, OpenVINO and optimum-intel again,
which costs more than the tiny model's export. A plain `optimum-cli` command (no pipes, redirects
or captured output) is run by the CLI's own main() in this already warm process instead
(inprocess.py); a failure raises CalledProcessError exactly as `check=True` would. Anything else
goes to the real subprocess.run. ONBOARD_WARM_CLI_LOG names a file that gets one line per command
(outcome, test id, arguments), so the report says which commands ran this way.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import inprocess

_real_run = subprocess.run
SHELL_SYNTAX = set("|&;<>()$`\\\n*?")


def _argv(cmd, kwargs) -> list[str] | None:
    """The optimum-cli arguments when `cmd` is a plain optimum-cli command, else None."""
    if any(kwargs.get(k) for k in ("capture_output", "stdout", "stderr", "input", "cwd", "env")):
        return None
    if isinstance(cmd, str):
        if not kwargs.get("shell") or SHELL_SYNTAX & set(cmd.replace('\\"', "")):
            return None
        try:
            argv = shlex.split(cmd)
        except ValueError:
            return None
    elif isinstance(cmd, (list, tuple)) and not kwargs.get("shell"):
        argv = [str(a) for a in cmd]
    else:
        return None
    return argv[1:] if argv and argv[0] == "optimum-cli" else None


def run(cmd, *args, **kwargs):
    argv = _argv(cmd, kwargs) if not args else None
    if argv is None:
        return _real_run(cmd, *args, **kwargs)
    ok, output = inprocess.optimum_cli(argv)
    log = os.environ.get("ONBOARD_WARM_CLI_LOG")
    if log:
        with open(log, "a") as f:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
            f.write(f"{'ok' if ok else 'failed'}\t{test}\t{' '.join(argv)[:300]}\n")
    if not ok and kwargs.get("check"):
        raise subprocess.CalledProcessError(1, cmd, output=output)
    return subprocess.CompletedProcess(cmd, 0 if ok else 1)


def pytest_configure(config):
    subprocess.run = run


def pytest_unconfigure(config):
    subprocess.run = _real_run
