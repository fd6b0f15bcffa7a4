"""`onboard analyze` and `onboard tiny`: look at an architecture, and make a tiny copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli.output import err, out, print_json
from tools.errors import UserError


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False, markup=True)
    raise typer.Exit(2)


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counts.items())


def analysis_table(a, source: str, target: Optional[str]) -> Table:
    from collections import Counter

    t = Table(title=f"{a.model_type} ({a.kind})", show_header=False, title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("source", source)
    if target:
        t.add_row("target", target)
    t.add_row("architectures", ", ".join(a.architectures) or "-")
    t.add_row("features", ", ".join(a.features))
    t.add_row("layers", f"{a.num_layers}: {_summary(Counter(a.layer_pattern))}")
    t.add_row("shape", f"hidden {a.hidden_size}, heads {a.num_attention_heads}/{a.num_key_value_heads} kv, "
                       f"head_dim {a.head_dim}, ffn {a.intermediate_size}, vocab {a.vocab_size}")
    if a.sliding_window:
        t.add_row("window", str(a.sliding_window))
    if a.moe:
        m = a.moe
        t.add_row("moe", f"{m['num_experts']} experts, top-{m['top_k']}, {m['num_shared_experts']} shared, "
                         f"first {m['first_k_dense']} dense")
    if a.mla:
        t.add_row("mla", ", ".join(f"{k} {v}" for k, v in a.mla.items()))
    if a.mtp_layers:
        t.add_row("mtp layers", str(a.mtp_layers))
    t.add_row("rope", ", ".join(f"{k} {v}" for k, v in a.rope.items() if v is not None) or "-")
    if a.text_config_key:
        t.add_row("text config", a.text_config_key)
    if a.quantization:
        t.add_row("quantization", str(a.quantization.get("quant_method")))
    t.add_row("lineage", " → ".join(a.lineage) or "-")
    return t


def analyze_command(
    model: str = typer.Argument(..., help="config.json, model directory, model_type or Hub id"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="target framework (passed through)"),
    as_json: bool = typer.Option(False, "--json", help="print the analysis JSON contract"),
) -> None:
    """Classify MODEL's architecture: kind, features, per-layer pattern, MoE/MLA details."""
    from tools.hf.config import analyze, load_config

    try:
        loaded = load_config(model)
        analysis = analyze(loaded.raw)
    except UserError as exc:
        _fail(exc)
    if as_json:
        data = analysis.model_dump(mode="json")
        if target:
            data = {**data, "target": target}
        print_json(data)
        return
    out.print(analysis_table(analysis, loaded.source, target))


def tiny_command(
    model: str = typer.Argument(..., help="config.json, model directory, model_type or Hub id"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="directory to receive the tiny model"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="state and caches (env ONBOARD_DATA_DIR)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Build (or reuse) a validated tiny random model of MODEL's architecture and copy it to --out."""
    from agent.cli.main import settings_for
    from tools.hf.config import load_config
    from tools.tiny.model import MARKER, TinyModelError, build_tiny

    try:
        settings = settings_for(data_dir)
        raw = load_config(model).raw
        tiny = build_tiny(raw, settings.caches / "tiny", seed=seed)
        dest = out_dir.expanduser().resolve()
        if dest.exists() and any(dest.iterdir()):
            if not (dest / MARKER).is_file():  # only an earlier tiny model may be replaced
                raise UserError(f"{dest} exists, is not empty and holds no tiny model; choose a new --out directory")
            shutil.rmtree(dest)
        shutil.copytree(tiny.path, dest, dirs_exist_ok=True)
    except UserError as exc:
        _fail(exc)
    except (TinyModelError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1)
    summary = {"path": str(dest), "cache": str(tiny.path), "model_type": raw["model_type"],
               "num_params": tiny.num_params, "layer_pattern": tiny.layer_pattern, "cached": tiny.cached,
               "build_seconds": tiny.build_seconds, "validation_ok": tiny.validation.get("ok"),
               "experts_used": (tiny.validation.get("experts") or {}).get("used")}
    if as_json:
        print_json(summary)
        return
    t = Table(title=f"tiny {raw['model_type']}", show_header=False, title_justify="left")
    for k, v in summary.items():
        if v is not None:
            t.add_row(k, str(v))
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("tiny")(tiny_command)
