"""`onboard sandbox …`: run one command in a fresh sandbox, make the images."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from tools.targets import DEFAULT_TARGET
from rich.markup import escape

from agent.cli.output import err

sandbox_app = typer.Typer(no_args_is_help=True, help="Sandboxes: run a command in one, build their images.")

# Exit codes in the spirit of `timeout(1)` and `docker run`.
EXIT_TIMEOUT = 124
EXIT_INFRA = 125
EXIT_KILLED = 137
EXIT_UNAVAILABLE = 3  # EnvironmentProblem's code


def _fail(message: str, code: int = EXIT_UNAVAILABLE) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _exit_code(result) -> int:
    if result.status == "timeout":
        return EXIT_TIMEOUT
    if result.status == "infra_error":
        return EXIT_INFRA
    if result.exit_code is not None:
        return result.exit_code if result.exit_code >= 0 else 128 - result.exit_code
    return EXIT_KILLED


@sandbox_app.command("exec")
def exec_command(
    cmd: List[str] = typer.Argument(..., metavar="-- CMD...", help="the command and its arguments"),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto | docker | local"),
    timeout: float = typer.Option(60.0, "--timeout", help="hard timeout, seconds"),
    idle_timeout: Optional[float] = typer.Option(None, "--idle-timeout", help="kill after this long without output"),
    image: Optional[str] = typer.Option(None, "--image", help="docker image (default: onboarder-optimum-intel:latest)"),
    memory_mb: int = typer.Option(8192, "--memory-mb"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Run CMD in a fresh sandbox; the exit code mirrors CMD's (124 on timeout)."""
    from sandboxes.base import Limits, SandboxUnavailable
    from sandboxes.factory import make_sandbox
    from sandboxes.images import DEFAULT_IMAGE

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        sandbox = make_sandbox(backend, image or DEFAULT_IMAGE)  # type: ignore[arg-type]
        result = sandbox.run(cmd, limits=Limits(timeout_s=timeout, idle_timeout_s=idle_timeout,
                                                memory_mb=memory_mb))
    except (SandboxUnavailable, ValueError) as exc:
        _fail(str(exc))
    code = _exit_code(result)
    if as_json:
        print(json.dumps({"backend": result.backend, "status": result.status, "exit_code": result.exit_code,
                          "reason": result.reason, "duration_s": round(result.duration_s, 3),
                          "truncated": result.truncated, "stdout": result.stdout, "stderr": result.stderr}))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.stdout.flush()
        why = f" ({result.reason})" if result.reason else ""
        trunc = ", output truncated" if result.truncated else ""
        err.print(f"[bold]{result.backend}[/]: {result.status}, exit {result.exit_code}, "
                  f"{result.duration_s:.2f} s{trunc}{escape(why)}", highlight=False)
    raise typer.Exit(code)


@sandbox_app.command("build")
def build_command(
    wheelhouse: Optional[Path] = typer.Option(None, "--wheelhouse",
                                              help="prepare wheels here on the host and build offline"),
    base: Optional[str] = typer.Option(None, "--base", help="base image (default python:3.11-slim)"),
    force: bool = typer.Option(False, "--force", help="rebuild even when the tagged image exists"),
    target: str = typer.Option(DEFAULT_TARGET, "--target", help="whose environment to build"),
) -> None:
    """Build a target's verification image (tag = hash of its environment folder); skipped when present."""
    from sandboxes.images import DEFAULT_BASE, ImageError, build_env
    from tools.targets import target_class

    try:
        info = build_env(target_class(target).env, base=base or DEFAULT_BASE,
                           wheelhouse=wheelhouse.expanduser().resolve() if wheelhouse else None, force=force,
                           log=lambda m: err.print(m, highlight=False, markup=False))
    except ImageError as exc:
        _fail(str(exc))
    verb = "built" if info.built else "present"
    print(f"{info.tag} {verb} {info.seconds:.0f}s {info.size_bytes / 1e9:.2f}GB")


@sandbox_app.command("bootstrap-base")
def bootstrap_command(
    name: Optional[str] = typer.Option(None, "--name", help="image name (default onboarder-base:bookworm)"),
    force: bool = typer.Option(False, "--force"),
) -> None:
    """Make a Debian bookworm base image with python3.11 (debootstrap + import; no registry needed)."""
    from sandboxes.images import BOOTSTRAP_BASE, ImageError, bootstrap_base

    try:
        info = bootstrap_base(name or BOOTSTRAP_BASE, force=force,
                              log=lambda m: err.print(m, highlight=False, markup=False))
    except ImageError as exc:
        _fail(str(exc))
    print(f"{info.tag} {'built' if info.built else 'present'} {info.seconds:.0f}s {info.size_bytes / 1e6:.0f}MB")


@sandbox_app.command("status")
def status_command(image: Optional[str] = typer.Option(None, "--image")) -> None:
    """Which backend `auto` would pick here, and why."""
    from sandboxes.factory import engine_status
    from sandboxes.images import DEFAULT_IMAGE

    client, why = engine_status(image or DEFAULT_IMAGE)
    if client is not None:
        print(f"docker ({image or DEFAULT_IMAGE})")
    else:
        print(f"local: {why}")


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
