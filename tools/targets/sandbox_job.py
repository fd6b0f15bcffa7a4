"""Run a target's verification job in a sandbox and read back its JSON report."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sandboxes.base import Limits, Mount
from sandboxes.output import write_host_file
from tools.targets.base import JobContext

# Helpers every in-sandbox job gets on its path (sitecustomize, the pytest selection plugin).
SITE = Path(__file__).resolve().parents[2] / "sandboxes" / "site"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_job(sandbox, job: Path, workspace: Path, ctx: JobContext, spec: dict, timeout_s: float,
            workspace_only: tuple[str, ...] = ()) -> dict:
    """`workspace_only`: namespace packages whose installed copies must be hidden behind the
    workspace's (see sandboxes/site/sitecustomize.py)."""
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    # The job writes only here; a container runs as another uid than ours, so the dir is opened to it.
    ctx.work_dir.chmod(0o777)
    # Read-only: the job verifies the patch, it must not be able to change it.
    m_ws = Mount(workspace.resolve(), "/workspace", read_only=True)
    # Only targets with needs_tiny_model have one; the others' jobs get no /tiny.
    m_tiny = Mount(ctx.tiny_dir.resolve(), "/tiny", read_only=True) if ctx.tiny_dir else None
    if ctx.tiny_dir:
        _readable_by_all(ctx.tiny_dir)
    m_out = Mount(ctx.work_dir.resolve(), "/out", read_only=False)
    m_job = Mount(job.parent.resolve(), "/job", read_only=True)
    m_site = Mount(SITE, "/site", read_only=True)
    phase = spec["phase"]
    full = {
        "workspace": sandbox.inside(m_ws),
        "tiny_dir": sandbox.inside(m_tiny) if m_tiny else None,
        "out_dir": sandbox.inside(m_out),
        "model_type": ctx.model_type,
        "tolerance": ctx.parity_tolerance,
        "max_new_tokens": 8,
        **spec,
    }
    spec_file = ctx.work_dir / f"spec-{phase}.json"
    # The directory is the sandbox's to write: names in it may be links planted by an earlier job.
    write_host_file(spec_file, json.dumps(full, indent=2))
    env = {
        # site/ first: its sitecustomize and pytest plugin apply to every process of the job.
        "PYTHONPATH": f"{sandbox.inside(m_site)}:{sandbox.inside(m_ws)}",
        "ONBOARD_WORKSPACE": sandbox.inside(m_ws),
        "ONBOARD_WORKSPACE_ONLY": ",".join(workspace_only),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    # Thread counts are not secrets: parallel jobs (nightly --jobs K) divide the cores through these.
    env.update({k: os.environ[k] for k in THREAD_VARS if k in os.environ})
    cmd = [sandbox.python, f"{sandbox.inside(m_job)}/{job.name}", f"{sandbox.inside(m_out)}/{spec_file.name}"]
    result = sandbox.run(cmd, mounts=[m for m in (m_ws, m_tiny, m_out, m_job, m_site) if m], env=env, workdir=m_out,
                         limits=Limits(timeout_s=timeout_s, cpu_weight=ctx.cpu_weight))
    write_host_file(
        ctx.work_dir / f"job-{phase}.log",
        f"$ {' '.join(cmd)}\n[status {result.status}, exit {result.exit_code}, "
        f"{result.duration_s:.1f}s, backend {result.backend}]\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    for line in reversed(result.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                report.setdefault("timings", {})[f"sandbox:{phase}"] = result.duration_s
                return report
            except ValueError:
                break
    tail = " ".join(result.stderr.strip().splitlines()[-3:])[-500:]
    return {
        "checks": [{"name": f"sandbox:{phase}", "status": "failed",
                    "detail": f"job ended with {result.status} (exit {result.exit_code}) and no report: {tail}",
                    "metrics": {}}],
        "timings": {f"sandbox:{phase}": result.duration_s},
    }


def _readable_by_all(root: Path) -> None:
    # safetensors saves 0600; a container's uid could not read the model. Only a tiny-model dir
    # (it carries the builder's marker) is touched: never an arbitrary directory a caller passed.
    if not (root / "onboard_tiny.json").is_file():
        return
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        want = mode | 0o444 | (0o111 if path.is_dir() else 0)
        if want != mode:
            path.chmod(want)
