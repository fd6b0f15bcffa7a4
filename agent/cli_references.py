"""`onboard references`: which earlier onboardings the agent would study, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli_output import out, print_json


def references_command(
    model: str = typer.Argument(..., help="model_type, config.json path or model dir"),
    target: str = typer.Option("optimum-intel", "--target", "-t"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    reference: list[str] = typer.Option([], "--reference", help="PR number or revision instead of automatic"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the reference changes chosen for MODEL, with scores and extracted patterns."""
    from agent.cli import fail, settings_for
    from agent.errors import UserError
    from agent.jobs import Request, resolve_workspace
    from agent.nodes.references import summarise
    from tools.hf_config import analyze, load_config
    from tools.reference import select
    from tools.repo import RepoManager
    from tools.targets import get_target

    try:
        settings = settings_for(data_dir)
        tgt = get_target(target, settings.caches)
        analysis = analyze(load_config(model).raw).model_dump(mode="json")
        repos = RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s)
        mirror, ws = resolve_workspace(tgt, Request(model=model, target=target, repo=repo), settings, repos)
        refs = select(mirror, tgt.references, analysis, settings.caches, k=settings.reference_count,
                      kind_of=tgt.kind_of, base_of=tgt.base_of, explicit=reference or None)
    except UserError as exc:
        fail(exc)
    if as_json:
        print_json([summarise(r) for r in refs])
        return
    if not refs:
        out.print(f"no earlier model additions found in {ws.origin} ({ws.source})")
    for r in refs:
        t = Table(title=f"{r.ref} {r.subject}  score {r.score}", show_header=False, title_justify="left")
        t.add_row("why", ", ".join(r.why))
        t.add_row("models", ", ".join(r.model_types))
        t.add_row("files", ", ".join(f"{f['path']} [{f['kind']}]" for f in r.files))
        for key, value in r.patterns.items():
            if value:
                t.add_row(key, str(value)[:400])
        out.print(t)


def register(app: typer.Typer) -> None:
    app.command("references")(references_command)
