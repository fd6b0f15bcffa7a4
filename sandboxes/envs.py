"""A sandbox environment: the folder that defines what a job runs with.

Each environment is one folder (a Dockerfile, a requirements lock and the
in-sandbox job) and yields two things: the docker image
`onboarder-<name>:<hash of the folder's build inputs>`, built once and reused,
and, for the local backend, an interpreter from a virtual environment built
from the same lock (cached per lock hash, like scripts/ensure-venv). An
environment whose lock is the host's own (the project's requirements.lock)
runs the host's interpreter locally: building a second copy of the same
packages would prove nothing more.

The backends know nothing of onboarding: an environment is data to them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

HOST_LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
# Python files of an env folder are the job's code, mounted at run time and never baked into the image:
# editing them must not rebuild an image of several GB. An env whose image is built FROM another env's
# image names it in its Dockerfile (ARG BASE).
NOT_BUILD_INPUTS = {"README.md"}


class EnvError(RuntimeError):
    """An environment could not be prepared; the message says why and what to do."""


def _venv_root() -> Path:
    base = os.environ.get("ONBOARD_VENV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "onboarder", "venvs")
    return Path(base)


class SandboxEnv(BaseModel):
    name: str  # image name: onboarder-<name>
    dir: Path  # Dockerfile, requirements.lock (or none: the host's), verify.py
    job: str = "verify.py"
    image_override: str | None = None  # a prebuilt image to use instead of building one

    @property
    def job_path(self) -> Path:
        return self.dir / self.job

    @property
    def dockerfile(self) -> Path:
        return self.dir / "Dockerfile"

    @property
    def lock(self) -> Path:
        own = self.dir / "requirements.lock"
        return own if own.is_file() else HOST_LOCK

    @property
    def uses_host_lock(self) -> bool:
        return self.lock == HOST_LOCK

    def build_inputs(self) -> list[Path]:
        files = sorted(p for p in self.dir.rglob("*") if p.is_file() and p.suffix != ".py"
                       and p.name not in NOT_BUILD_INPUTS and "__pycache__" not in p.parts)
        return files + ([HOST_LOCK] if self.uses_host_lock else [])

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.build_inputs():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        return h.hexdigest()[:16]

    @property
    def image(self) -> str:
        # ONBOARD_<NAME>_IMAGE names a prebuilt image (a registry's, or one built elsewhere).
        override = self.image_override or os.environ.get(f"ONBOARD_{self.name.upper().replace('-', '_')}_IMAGE")
        return override or f"onboarder-{self.name}:{self.digest()}"

    def local_python(self, progress: Callable[[str], None] | None = None) -> str:
        """The interpreter the local backend runs this env's jobs with (built on first use)."""
        if self.uses_host_lock:
            return sys.executable
        key = hashlib.sha256(self.lock.read_bytes()).hexdigest()[:16]
        venv = _venv_root() / f"{self.name}-{key}"
        python = venv / "bin" / "python"
        if (venv / ".complete").is_file():
            return str(python)
        say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        say(f"environment {self.name}: building {venv} from {self.lock.name} (first use only; minutes)")
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                           capture_output=True, text=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "-r", str(self.lock)], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise EnvError(f"environment {self.name}: installing {self.lock} failed: {tail[0][:300]}") from None
        (venv / ".complete").write_text(key)
        say(f"environment {self.name}: ready")
        return str(python)

    def describe(self) -> dict:
        return {"name": self.name, "image": self.image, "lock": self.lock.name if not self.uses_host_lock
                else "host requirements.lock"}
