"""`onboard bench references`: how long choosing reference changes takes over a real history.

Cold is a fresh mirror and empty caches in a scratch directory (the history scan and
the kind/base family of every registered type are computed); warm is the same
selection again with the disk caches filled and the in-process memo cleared, which
is what a new `onboard run` sees. Model analysis is timed apart: it is not selection.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from agent.cli.output import out
from tools.targets import DEFAULT_TARGET

DEFAULT_TYPES = ["seed_oss", "olmoe", "qwen3_moe"]


def _clear_memo(*fns) -> None:
    for fn in fns:
        getattr(fn, "cache_clear", lambda: None)()


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_bench(tgt, url: str, types: list[str], runs: int, k: int, scratch: Path) -> dict:
    """Numbers for `types` over the history of `url`, all state under `scratch`."""
    import git

    from tools.repo.git_safe import open_gitdir
    from tools.hf.config import analyze, load_config
    from tools.repo.references import find_additions, select
    from tools.repo.workspace import RepoManager

    repos = RepoManager(scratch)
    mirror, clone_s = _timed(lambda: repos.mirror(url))
    repo = open_gitdir(mirror)
    registry = tgt.references().registry_files
    history = {
        "head": repo.git.rev_parse("HEAD"),
        "commits": int(repo.git.rev_list("--count", "HEAD")),
        "first_parent_commits": int(repo.git.rev_list("--first-parent", "--count", "HEAD")),
        "registry_commits": int(repo.git.rev_list("--first-parent", "--count", "HEAD", "--", *registry)),
    }
    analyses, analysis_s = {}, {}
    for t in types:
        analyses[t], analysis_s[t] = _timed(lambda: analyze(load_config(t).raw).model_dump(mode="json"))

    def choose(t: str):
        return select(mirror, tgt.references(), analyses[t], scratch, k=k, kind_of=tgt.references().kind_of,
                      base_of=tgt.references().base_of)

    _clear_memo(tgt.references().kind_of, tgt.references().base_of)
    _, cold_s = _timed(lambda: choose(types[0]))
    additions = find_additions(mirror, tgt.references(), scratch)
    for cached in (scratch / "references").glob(f"{mirror.name}-*.json"):
        cached.unlink()
    _, scan_s = _timed(lambda: find_additions(mirror, tgt.references(), scratch))

    rows = []
    for t in types:
        times, refs = [], []
        for _ in range(runs):
            _clear_memo(tgt.references().kind_of, tgt.references().base_of)
            refs, secs = _timed(lambda t=t: choose(t))
            times.append(secs)
        rows.append({"model_type": t, "kind": analyses[t].get("kind"), "analysis_s": round(analysis_s[t], 3),
                     "warm_median_s": round(statistics.median(times), 4), "warm_max_s": round(max(times), 4),
                     "refs": [{"ref": r.ref, "subject": r.subject, "score": r.score, "models": r.model_types,
                               "patcher": any(f["kind"] == "patcher" for f in r.files)} for r in refs]})
    return {"repo": url, **history, "additions": len(additions),
            "model_types_registered": len({m for a in additions for m in a.model_types}),
            "clone_s": round(clone_s, 3), "cold_select_s": round(cold_s, 3), "cold_type": types[0],
            "history_scan_uncached_s": round(scan_s, 3), "runs": runs, "rows": rows}


def bench_references(
    types: list[str] = typer.Argument(None, help=f"model types (default: {' '.join(DEFAULT_TYPES)})"),
    target: str = typer.Option(DEFAULT_TARGET, "--target"),
    repo: Optional[str] = typer.Option(None, "--repo", help="URL or local checkout (default: the target's)"),
    runs: int = typer.Option(5, "--runs", help="warm selections per model type"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Reference selection time over the target's real history: cold, warm, and what was chosen."""
    from agent.cli.main import fail, settings_for
    from tools.errors import UserError
    from tools.repo.workspace import RepoUnavailable, normalise_repo
    from tools.targets import get_target

    scratch = None
    try:
        settings = settings_for(data_dir)
        tgt = get_target(target, settings.caches)
        if tgt.references() is None:
            raise UserError(f"target {target} keeps no reference changes in git history")
        url = normalise_repo(repo) if repo else tgt.default_repo
        scratch = Path(tempfile.mkdtemp(prefix="onboard-bench-refs-"))
        result = run_bench(tgt, url, types or DEFAULT_TYPES, max(1, runs), settings.reference_count, scratch)
    except RepoUnavailable as exc:
        fail(UserError(str(exc)))
    except UserError as exc:
        fail(exc)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    _print(result)


def _print(result: dict) -> None:
    t = Table("measure", "value", title=f"bench references over {result['repo']}")
    t.add_row("HEAD", result["head"][:12])
    t.add_row("commits (all / first-parent / touching the registry)",
              f"{result['commits']} / {result['first_parent_commits']} / {result['registry_commits']}")
    t.add_row("additions found (model types registered)",
              f"{result['additions']} ({result['model_types_registered']})")
    t.add_row("clone of the mirror (cold)", f"{result['clone_s']:.2f} s")
    t.add_row(f"selection, cold caches ({result['cold_type']})", f"{result['cold_select_s']:.2f} s")
    t.add_row("  of which history scan, uncached", f"{result['history_scan_uncached_s']:.2f} s")
    for row in result["rows"]:
        t.add_row(f"selection, warm ({row['model_type']}, {row['kind']}; median/max of {result['runs']})",
                  f"{row['warm_median_s']:.3f} / {row['warm_max_s']:.3f} s")
    out.print(t)
    for row in result["rows"]:
        out.print(f"{row['model_type']} ({row['kind']}; analysis {row['analysis_s']:.2f} s, not counted):",
                  highlight=False, soft_wrap=True)
        for r in row["refs"]:
            out.print(f"  {r['ref']:<7} {r['score']:>6}  {'patcher ' if r['patcher'] else '        '}"
                      f"{','.join(r['models'])[:40]:<40} {r['subject'][:70]}",
                      highlight=False, markup=False, soft_wrap=True)
