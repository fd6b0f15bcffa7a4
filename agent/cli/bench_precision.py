"""`onboard bench precision`: the precision matrix of models the target already supports.

Its table is what the default tolerances (tools/targets/optimum_intel/precision.py) are justified by, and
with --write it becomes the family baseline a new model is compared with (precision_baseline.json).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli.output import err, out

DEFAULT_TYPES = ["llama", "qwen2", "mistral", "phi3", "gemma", "olmo2", "qwen3"]


def _merged(baseline: dict, new: dict) -> dict:
    """The stored baseline plus (or updated by) the new models, when both were measured on the same host."""
    from tools.errors import UserError

    keys = ("cpu_model", "openvino", "devices")
    old_host, new_host = baseline.get("host", {}), new.get("host", {})
    if baseline.get("models") and any(old_host.get(k) != new_host.get(k) for k in keys):
        raise UserError(f"the stored baseline was measured on {old_host.get('cpu_model')} with OpenVINO "
                        f"{old_host.get('openvino')}, this run on {new_host.get('cpu_model')} with OpenVINO "
                        f"{new_host.get('openvino')}: measure every model again with --write")
    return {"host": new_host, "models": {**baseline.get("models", {}), **new["models"]}}


def bench_precision(
    types: list[str] = typer.Argument(None, help=f"supported model types (default: {' '.join(DEFAULT_TYPES)})"),
    repo: Path = typer.Option(..., "--repo", help="a local optimum-intel checkout (the models must be supported)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    write: bool = typer.Option(False, "--write", help="store the result as the family baseline"),
    add: bool = typer.Option(False, "--add", help="store these models into the baseline, keeping the others "
                             "(refused when the baseline was measured on another host or OpenVINO)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Top-1 / greedy agreement and max |Δlogits| per precision for supported models' tiny models."""
    from agent.cli.main import fail, settings_for
    from agent.graph.run import make_sandbox
    from tools.errors import EnvironmentProblem, UserError
    from tools.hf.config import load_config
    from tools.targets.optimum_intel.precision import BASELINE, load_baseline, measure_supported
    from tools.targets.optimum_intel.target import ENV, read_registry

    try:
        settings = settings_for(data_dir)
        supported = read_registry(repo.resolve())
        unknown = [t for t in (types or DEFAULT_TYPES) if t not in supported]
        if unknown:
            raise UserError(f"not supported by {repo}: {', '.join(unknown)} (the baseline is of supported models)")
        for model_type in types or DEFAULT_TYPES:  # before minutes of measuring, not after
            load_config(model_type)
        sandbox = make_sandbox(settings, ENV)
    except (UserError, EnvironmentProblem, FileNotFoundError) as exc:
        fail(exc if not isinstance(exc, FileNotFoundError) else UserError(str(exc)))
    scratch = Path(tempfile.mkdtemp(prefix="onboard-bench-precision-"))
    models, host = {}, {}
    try:
        for model_type in types or DEFAULT_TYPES:
            err.print(f"  {model_type} …", highlight=False)
            entry = measure_supported(model_type, repo.resolve(), settings.caches / "tiny", scratch, sandbox,
                                      settings.devices, settings.verify_timeout_s)
            models[model_type] = entry
            host = host or entry["host"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"host": host, "models": models}
    if write or add:  # measured rows only: an absent GPU here says nothing about a family
        stored = {"host": host, "models": {m: {**e, "rows": [r for r in e["rows"] if r["status"] == "measured"]}
                                           for m, e in models.items()}}
        if add:
            try:
                stored = _merged(load_baseline(BASELINE), stored)
            except UserError as exc:
                if as_json:  # what was measured is not lost
                    print(json.dumps(result, indent=1))
                fail(exc)
        BASELINE.write_text(json.dumps(stored, indent=1) + "\n")
        err.print(f"baseline written: {BASELINE.name} ({len(stored['models'])} models)")
    if as_json:
        print(json.dumps(result, indent=1))
        return
    out.print(f"host: {host.get('cpu_model')} ({', '.join(host.get('isa', []))}), OpenVINO {host.get('openvino')}",
              highlight=False)
    table = Table("model", "device", "precision", "inference", "top-1", "greedy", "max |Δlogits|", "seconds",
                  title="bench precision")
    for mt, entry in models.items():
        if not entry["rows"]:
            table.add_row(mt, "-", "-", "-", "-", "-", entry["f32_gate"][:60], "-")
        for r in entry["rows"]:
            if r["status"] != "measured":
                table.add_row(mt, r["device"], r["precision"], "-", r["status"], "-", r.get("reason", "")[:50], "-")
                continue
            greedy = "-" if r.get("greedy") is None else f"{r['greedy']:.3f}"
            table.add_row(mt, r["device"], r["precision"], r.get("inference_precision", "?"), f"{r['top1']:.3f}",
                          greedy, f"{r['max_abs_diff']:.3g}", f"{entry['seconds'] or 0:.0f}")
    out.print(table)
