"""Pick a sandbox backend: docker when an engine answers and has the image,
else local (with a warning that it is weaker)."""

from __future__ import annotations

import logging
import os
from typing import Literal

from sandboxes.base import Sandbox, SandboxUnavailable
from sandboxes.envs import SandboxEnv
from sandboxes.images import DEFAULT_IMAGE

log = logging.getLogger(__name__)

Kind = Literal["auto", "local", "docker"]


def engine_status(image: str | None = None, ping_timeout_s: float = 2.0) -> tuple[object | None, str]:
    """(client, "") when the engine answers (and has `image`, if given), else (None, why)."""
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        import docker
    except ImportError:
        return None, "the docker SDK is not installed"
    try:
        # A short timeout for the probe only: a wedged daemon must not stall `auto`.
        client = docker.from_env(version="auto", timeout=ping_timeout_s)
        client.ping()
    except Exception as exc:
        return None, f"no Docker engine answers at {where} ({type(exc).__name__})"
    if image:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            return None, f"image {image} is missing (build it: onboard sandbox build)"
        except Exception as exc:
            return None, f"engine at {where} failed to list images ({exc})"
    return client, ""


def make_sandbox(kind: Kind = "auto", env: SandboxEnv | str = DEFAULT_IMAGE, *, ping_timeout_s: float = 2.0,
                 python: str | None = None, progress=None, devices: tuple[str, ...] = ()) -> Sandbox:
    """A sandbox for `env` (an environment, or just an image name). `python` overrides the
    interpreter used inside (docker: `python`, local: the env's, built on first use). `devices`:
    accelerators (GPU, NPU) a container may use where the host has them. The local backend's private
    /dev does not pass them (yet): there, GPU/NPU rows are skipped with the runtime's reason."""
    from sandboxes.local import LocalSandbox

    image = env.image if isinstance(env, SandboxEnv) else env
    if kind == "local":
        if python is None and isinstance(env, SandboxEnv):
            python = env.local_python(progress)
        return LocalSandbox(python=python)
    if kind not in ("auto", "docker"):
        raise ValueError(f"unknown sandbox kind {kind!r} (auto, local or docker)")
    client, why = engine_status(image, ping_timeout_s)
    if client is not None:
        from sandboxes.docker import DockerSandbox

        # The probe client's short timeout would cut real calls (create on a
        # busy daemon); DockerSandbox makes its own.
        return DockerSandbox(image, python=python or "python", devices=devices)
    if kind == "docker":
        raise SandboxUnavailable(f"docker sandbox unavailable: {why}")
    log.warning("sandbox: falling back to local: %s", why)
    if python is None and isinstance(env, SandboxEnv):
        python = env.local_python(progress)
    try:
        return LocalSandbox(python=python)
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(f"{exc}; and docker: {why}") from None
