"""`optimum-cli` run inside the verification process instead of a new interpreter.

The int8 export is the CLI's own code path (argument parsing, command registry, quantization
config) exactly as `optimum-cli export openvino … --weight-format int8` runs it; only the process is
shared, so torch, OpenVINO and optimum-intel are not imported a second time.
Standard library only: this runs inside the sandbox image.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback


def optimum_cli(args: list[str]) -> tuple[bool, str]:
    """(succeeded, last lines of its output or error) of `optimum-cli ARGS`."""
    from optimum.commands.optimum_cli import main

    saved, buf = sys.argv, io.StringIO()
    sys.argv = ["optimum-cli", *args]
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            main()
        return True, buf.getvalue()[-400:]
    except SystemExit as exc:  # argparse errors and the CLI's own exit(1)
        ok = exc.code in (0, None)
        return ok, (buf.getvalue() or f"exit {exc.code}")[-400:]
    except Exception as exc:  # noqa: BLE001 - the export's failure is the check's detail
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return False, f"{buf.getvalue()[-200:]} {last}"[-400:]
    finally:
        sys.argv = saved
