"""`onboard references`: which earlier onboardings the agent would study, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli.output import err, out, print_json
from tools.targets import DEFAULT_TARGET


def references_command(
    model: str = typer.Argument(..., help="model_type, config.json path or model dir"),
    target: str = typer.Option(DEFAULT_TARGET, "--target", "-t"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    reference: list[str] = typer.Option([], "--reference", help="PR number or revision instead of automatic"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the reference changes chosen for MODEL, with scores and extracted patterns."""
    from agent.cli.main import fail, settings_for
    from tools.errors import UserError
    from agent.graph.nodes.references import summarise
    from tools.hf.config import analyze, load_config
    from tools.repo.workspace import RepoManager
    from tools.targets import get_target

    try:
        settings = settings_for(data_dir)
        tgt = get_target(target, settings.caches)
        if tgt.references() is None:
            raise UserError(f"target {target} keeps no reference changes in git history")
        repos = RepoManager(settings.caches, settings.git_timeout_s, settings.mirror_freshness_s, on_note=_note)
        # The repository first: a bad --repo fails in a second, before transformers is imported.
        url, mirror = _mirror(repos, repo or tgt.default_repo)
        analysis = analyze(load_config(model).raw).model_dump(mode="json")
        refs = _select_or_reclone(repos, url, mirror, tgt, analysis, settings, reference)
    except UserError as exc:
        fail(exc)
    if as_json:
        print_json([summarise(r) for r in refs])
        return
    if not refs:
        out.print(f"no earlier model additions found in {url}")
    for r in refs:
        t = Table(title=f"{r.ref} {r.subject}  score {r.score}", show_header=False, title_justify="left")
        t.add_row("why", ", ".join(r.why))
        t.add_row("models", ", ".join(r.model_types))
        t.add_row("files", ", ".join(f"{f['path']} [{f['kind']}]" for f in r.files))
        for key, value in r.patterns.items():
            if value:
                t.add_row(key, str(value)[:400])
        out.print(t)


def _note(message: str) -> None:
    from rich.markup import escape

    err.print(f"[yellow]note:[/yellow] {escape(message)}", soft_wrap=True, highlight=False)


def _mirror(repos, repo: str) -> tuple[str, Path]:
    from tools.errors import UserError
    from tools.repo.workspace import RepoUnavailable, normalise_repo

    url = normalise_repo(repo)
    try:
        return url, repos.mirror(url)
    except RepoUnavailable as exc:
        # No package-index fallback here: a source distribution has no history to learn from.
        raise UserError(f"{exc} (references need the repository's git history)") from None


def _select_or_reclone(repos, url: str, mirror: Path, tgt, analysis: dict, settings, reference: list[str]):
    """Select; a git failure while reading the mirror's history means a corrupt mirror the
    cheap health check missed (a damaged object deep in history): re-clone once and retry."""
    import git

    from tools.errors import UserError
    from tools.repo.references import select
    from tools.repo.workspace import RepoUnavailable, git_reason

    def run(m: Path):
        return select(m, tgt.references(), analysis, settings.caches, k=settings.reference_count,
                      kind_of=tgt.references().kind_of, base_of=tgt.references().base_of, explicit=reference or None)

    try:
        return run(mirror)
    except git.GitCommandError as exc:
        try:
            mirror = repos.mirror(url, corrupt=git_reason(exc))
        except RepoUnavailable as again:
            raise UserError(f"the mirror of {url} is corrupt and cloning it again failed: {again}") from None
    try:
        return run(mirror)
    except git.GitCommandError as exc:
        raise UserError(f"reading the history of {url} failed even after a fresh clone: {git_reason(exc)}") from None


def register(app: typer.Typer) -> None:
    app.command("references")(references_command)
