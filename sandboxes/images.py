"""Sandbox images: a debootstrapped base when no registry answers, and the
verification image, tagged by a hash of its inputs and skipped when present.

Command line (used by .ci/docker-up, mirrored by `onboard sandbox ...`):
    python -m sandboxes.images bootstrap-base [--name NAME]
    python -m sandboxes.images build [--base IMAGE] [--wheelhouse DIR] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandboxes.envs import SandboxEnv

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCK = REPO_ROOT / "requirements.lock"
DEFAULT_BASE = "python:3.11-slim"
BOOTSTRAP_BASE = "onboarder-base:bookworm"
IMAGE_NAME = "onboarder-optimum-intel"  # the default environment's image
DEFAULT_IMAGE = f"{IMAGE_NAME}:latest"
# python3.11-venv brings ensurepip (stage 1 makes the venv with it); it needs
# the virtual python3.11-distutils, which debootstrap cannot resolve by
# itself, so its provider is named. The C++ and OpenMP runtimes are what the
# torch/openvino wheels expect from the system.
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-distutils", "libstdc++6", "libgomp1",
                 "ca-certificates")
DEBIAN_MIRROR = os.environ.get("ONBOARD_DEBIAN_MIRROR", "http://deb.debian.org/debian")

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """An image could not be made; the message says why and what to do."""


@dataclass
class ImageInfo:
    tag: str
    built: bool  # False when an existing image was reused
    seconds: float
    size_bytes: int


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def engine(timeout: float | None = 60.0):
    """A client for the engine at DOCKER_HOST (or the default socket).

    `version="auto"`: the SDK's default API version is newer than Debian's
    20.10 daemon accepts.
    """
    import docker

    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # DockerException, requests errors, socket errors
        where = os.environ.get("DOCKER_HOST", "the default socket")
        raise ImageError(f"no Docker engine answers at {where}: {exc}") from None


def image_exists(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _image_id(client, name: str) -> str | None:
    import docker

    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None


def inputs_hash(files: list[Path], base: str, base_id: str | None = None) -> str:
    # The base's id (when known locally) is an input too: re-bootstrapping
    # the base must not leave a stale image under the same tag.
    h = hashlib.sha256()
    for part in [f.read_bytes() for f in files] + [base.encode(), (base_id or "").encode()]:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _tools_file(dockerfile: Path) -> Path:
    return dockerfile.parent / "venv-tools.txt"


def prepare_wheelhouse(requirements: list[Path], dest: Path, *, python: str = sys.executable,
                       log: Log = _stderr) -> Path:
    """Fill `dest` with wheels for every pin in `requirements` (once per content)."""
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / f".complete-{inputs_hash(requirements, '')}"
    if marker.exists():
        log(f"wheelhouse {dest} is complete for these requirements")
        return dest
    if sys.version_info[:2] != (3, 11):
        log(f"warning: preparing wheels with python {sys.version.split()[0]}; the image runs 3.11")
    start = time.monotonic()
    reqs = [arg for r in requirements for arg in ("-r", str(r))]
    # --no-deps: the files are already closed over their dependencies.
    pip = [python, "-m", "pip"]
    log(f"wheelhouse: pip download into {dest}")
    download = [*pip, "download", "-q", "--only-binary=:all:", "--no-deps", *reqs, "-d", str(dest)]
    if subprocess.run(download, stdout=sys.stderr, stderr=subprocess.PIPE).returncode != 0:
        # Some pins exist only as sdists (docopt==0.6.2): build those on the host.
        log("wheelhouse: some pins have no wheel; building them with pip wheel")
        wheel = [*pip, "wheel", "-q", "--no-deps", "--prefer-binary", *reqs, "-w", str(dest)]
        proc = subprocess.run(wheel, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
            raise ImageError(f"wheelhouse incomplete: {' '.join(errors)[-400:] or 'pip wheel failed'}")
    marker.touch()
    size = sum(p.stat().st_size for p in dest.glob("*.whl"))
    log(f"wheelhouse ready: {size / 1e9:.1f} GB in {time.monotonic() - start:.0f} s")
    return dest


def _stage_context(dockerfile: Path, lock: Path, wheelhouse: Path | None) -> Path:
    ctx = Path(tempfile.mkdtemp(prefix="onboard-build-"))
    shutil.copy2(dockerfile, ctx / "Dockerfile")
    shutil.copy2(lock, ctx / "requirements.lock")
    if _tools_file(dockerfile).is_file():
        shutil.copy2(_tools_file(dockerfile), ctx / "venv-tools.txt")
    stage = dockerfile.parent / "stage"
    if stage.is_file():  # an environment that copies host files in (node for flashinfer-bench) stages them
        proc = subprocess.run([str(stage), str(ctx)], stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            shutil.rmtree(ctx, ignore_errors=True)
            raise ImageError(f"{stage} failed: {proc.stderr.strip()[-300:]}")
    wheels = ctx / "wheels"
    wheels.mkdir()
    for whl in sorted(wheelhouse.glob("*.whl")) if wheelhouse else []:
        try:  # hard links: the wheelhouse is gigabytes, copying it would double the disk use
            os.link(whl, wheels / whl.name)
        except OSError:
            shutil.copy2(whl, wheels / whl.name)
    return ctx


def build_image(
    *,
    base: str = DEFAULT_BASE,
    wheelhouse: Path | None = None,
    lock: Path = DEFAULT_LOCK,
    dockerfile: Path = TARGETS_DIR / "optimum_intel" / "Dockerfile",
    name: str = IMAGE_NAME,
    client=None,
    force: bool = False,
    log: Log = _stderr,
    tag: str | None = None,
    latest: bool = True,
) -> ImageInfo:
    """Build `name:<hash of inputs>` (or `tag`), tag it `name:latest`; reuse it when present."""
    if not lock.is_file():
        raise ImageError(f"no lock file at {lock}")
    # Long timeout: COPY of a multi-GB venv is silent for minutes.
    client = client or engine(timeout=3600)
    inputs = [p for p in (dockerfile, _tools_file(dockerfile), lock) if p.is_file()]
    tag = tag or f"{name}:{inputs_hash(inputs, base, _image_id(client, base))}"
    start = time.monotonic()
    if image_exists(client, tag) and not force:
        if latest:
            client.api.tag(tag, name, "latest")
        log(f"image {tag} already present; skipped build")
        return ImageInfo(tag, False, 0.0, client.images.get(tag).attrs.get("Size", 0))
    if wheelhouse is not None and _tools_file(dockerfile).is_file():  # only images that install packages
        prepare_wheelhouse([_tools_file(dockerfile), lock], wheelhouse, log=log)
    ctx = _stage_context(dockerfile, lock, wheelhouse)
    log(f"building {tag} FROM {base} (classic builder{', offline from wheelhouse' if wheelhouse else ''})")
    try:
        stream = client.api.build(
            path=str(ctx), tag=tag, buildargs={"BASE": base}, rm=True, forcerm=True, pull=False,
            decode=True, network_mode="none" if wheelhouse else None,
        )
        for chunk in stream:
            if "error" in chunk:
                hint = ""
                if "pull access denied" in chunk["error"] or "not found" in chunk["error"]:
                    hint = f" (no registry? run bootstrap-base and pass --base {BOOTSTRAP_BASE})"
                raise ImageError(f"build failed: {chunk['error'].strip()}{hint}")
            line = (chunk.get("stream") or "").rstrip()
            if line and not line.startswith(" ---> ") and "Removing intermediate" not in line:
                log(line)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"build failed: {exc}") from None
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    if latest:
        client.api.tag(tag, name, "latest")
    size = client.images.get(tag).attrs.get("Size", 0)
    took = time.monotonic() - start
    log(f"built {tag} in {took:.0f} s, {size / 1e9:.2f} GB")
    return ImageInfo(tag, True, took, size)


def env_at(folder: str) -> SandboxEnv:
    """The environment defined by sandboxes/targets/<folder>/."""
    if not (TARGETS_DIR / folder / "Dockerfile").is_file():
        known = sorted(p.parent.name for p in TARGETS_DIR.glob("*/Dockerfile"))
        raise ImageError(f"no environment {folder!r}; known: {', '.join(known)}")
    return SandboxEnv(name=folder.replace("_", "-"), dir=TARGETS_DIR / folder)


def build_env(env: SandboxEnv, tag: str | None = None, **kwargs) -> ImageInfo:
    """The image of `env`, tagged `env.image` (or `tag`) and onboarder-<name>:latest."""
    return build_image(dockerfile=env.dockerfile, lock=env.lock, name=f"onboarder-{env.name}",
                       tag=tag or env.image, **kwargs)


def _mounts_under(path: Path) -> list[str]:
    root = str(path.resolve())
    with open("/proc/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


def _safe_rmtree(path: Path) -> None:
    # An interrupted debootstrap can leave /proc or /sys mounted inside the
    # chroot; deleting through a live mount would damage the host.
    for point in sorted(_mounts_under(path), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    if _mounts_under(path):
        _stderr(f"warning: {path} still has mounts; left in place")
        return
    shutil.rmtree(path, ignore_errors=True)


def _debootstrap_exe(log: Log) -> str:
    exe = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if exe:
        return exe
    log("debootstrap missing; installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ok = subprocess.run(["apt-get", "update", "-qq"], env=env).returncode == 0 and subprocess.run(
        ["apt-get", "install", "-y", "-qq", "debootstrap"], env=env).returncode == 0
    if not ok or not Path("/usr/sbin/debootstrap").exists():
        raise ImageError("debootstrap is not installed and apt-get could not install it")
    return "/usr/sbin/debootstrap"


def bootstrap_base(
    name: str = BOOTSTRAP_BASE,
    *,
    client=None,
    suite: str = "bookworm",
    mirror: str = DEBIAN_MIRROR,
    packages: tuple[str, ...] = BASE_PACKAGES,
    force: bool = False,
    log: Log = _stderr,
) -> ImageInfo:
    """Make a Debian base image with python3.11 without any registry:
    debootstrap a minbase root, then `docker import` it."""
    client = client or engine(timeout=600)
    if image_exists(client, name) and not force:
        log(f"base {name} already present; skipped bootstrap")
        return ImageInfo(name, False, 0.0, client.images.get(name).attrs.get("Size", 0))
    if os.geteuid() != 0:
        raise ImageError("bootstrap-base needs root (debootstrap builds a chroot)")
    exe = _debootstrap_exe(log)
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="onboard-rootfs-", dir="/var/tmp"))
    root, tar = work / "root", work / "rootfs.tar"
    try:
        cmd = [exe, "--variant=minbase", f"--include={','.join(packages)}", suite, str(root), mirror]
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise ImageError("debootstrap failed: " + " | ".join(proc.stdout.strip().splitlines()[-2:]))
        # Package lists and .debs are useless in an offline sandbox.
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (root / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tar), "."], check=True)
        repo, _, tag = name.partition(":")
        client.api.import_image_from_file(
            str(tar), repository=repo, tag=tag or "latest",
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'],
        )
    except subprocess.CalledProcessError as exc:
        raise ImageError(f"packing the root fs failed: {exc}") from None
    finally:
        _safe_rmtree(work)
    version = client.containers.run(name, ["python3.11", "-c", "import sys; print(sys.version.split()[0])"],
                                     network_mode="none", remove=True).decode().strip()
    took = time.monotonic() - start
    size = client.images.get(name).attrs.get("Size", 0)
    log(f"base {name} ready in {took:.0f} s: python {version}, {size / 1e6:.0f} MB")
    return ImageInfo(name, True, took, size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandboxes.images")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bootstrap-base")
    b.add_argument("--name", default=BOOTSTRAP_BASE)
    b.add_argument("--force", action="store_true")
    i = sub.add_parser("build")
    i.add_argument("--base", default=DEFAULT_BASE)
    i.add_argument("--wheelhouse", type=Path)
    i.add_argument("--force", action="store_true")
    i.add_argument("--env", default="optimum_intel", help="folder under sandboxes/targets/")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "bootstrap-base":
            info = bootstrap_base(args.name, force=args.force)
        else:
            info = build_env(env_at(args.env), base=args.base, wheelhouse=args.wheelhouse, force=args.force)
    except ImageError as exc:
        _stderr(f"error: {exc}")
        return 1
    print(info.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
