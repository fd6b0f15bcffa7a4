"""FlashInfer-Bench: a model entry in models.ts, the kernel Definitions it needs, its coverage row.

Unlike optimum-intel the change is data, not Python: a TypeScript object in `web/apps/web/data/models.ts`
(module tree named after SGLang's attributes, counts from the config, Definition names per module under
a TP/EP setting), Definition JSON files for names the dataset lacks, and a row in the coverage page.
It is proved by the TypeScript compiler against the repository's zod schema, a semantic check of the
tree, the flashinfer_bench Definition model and a CPU run of every new reference.

This module is the target contract; each step lives in its own module of this package: model (the
SGLang module tree), names, entry, models_ts, defs and templates, dataset, coverage, checks, job.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.targets.flashinfer_bench import defs
from tools.targets.flashinfer_bench import model as fbm
from sandboxes.envs import SandboxEnv
from tools.targets.base import (REPO_ROOT, Applied, BaseTarget, Candidate, Check, JobContext, Plan, PRMeta,
                                 VerifyReport)
from tools.targets.flashinfer_bench.checks import semantic_problems, tsc_check
from tools.targets.flashinfer_bench.coverage import COVERAGE, coverage_section, upsert_coverage
from tools.targets.flashinfer_bench.dataset import DEFS_DIR, changed_definitions, load_dataset
from tools.targets.flashinfer_bench.entry import build_entry, model_id, referenced, sampling_names
from tools.targets.flashinfer_bench.models_ts import MODELS_TS, read_entries, upsert_entry
from tools.targets.flashinfer_bench.names import parse_name
from sandboxes.output import write_host_file

ATTENTION_LAYERS = {"full_attention", "attention", "sliding_attention", "chunked_attention"}
ENV = SandboxEnv(name="flashinfer-bench", dir=REPO_ROOT / "sandboxes" / "targets" / "flashinfer_bench")
JOB = ENV.job_path


class FlashInferBenchSettings(BaseSettings):
    """ONBOARD_FIB_TP / _EP (parallelism the names are computed for), _DATASET (Definition dataset dir),
    _SGLANG (a models dir or wheel instead of the one fetched), _NODE_MODULES (TypeScript + zod)."""

    model_config = SettingsConfigDict(env_prefix="ONBOARD_FIB_")

    tp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    dataset: str | None = None
    sglang: str | None = None
    node_modules: str | None = None


class FlashInferBenchTarget(BaseTarget):
    key = "flashinfer-bench"
    default_repo = "https://github.com/flashinfer-ai/flashinfer-bench.git"
    pypi_name = "flashinfer-bench"
    env = ENV
    marker = MODELS_TS
    # Entries are data derived from the config and SGLang's module tree: no model is ever run.
    needs_tiny_model = False
    done_when = ("models.ts type-checks against the repository's zod schema with tsc --strict, the entry's "
                 "module tree and counts match the config, and every new Definition validates and its "
                 "reference runs on CPU")

    def __init__(self, cache_dir: Path, parallel: fbm.Parallel | None = None, dataset: str | None = None,
                 sglang: str | None = None, node_modules: str | None = None):
        super().__init__(Path(cache_dir) / "flashinfer-bench")
        env = FlashInferBenchSettings()
        self.parallel = parallel or fbm.Parallel(env.tp, env.ep)
        self.dataset_path = dataset or env.dataset
        self.sglang = sglang or env.sglang
        explicit = node_modules or env.node_modules
        self.node_modules = explicit or str(self.cache_dir / "npm" / "node_modules")
        self.fetch_node_modules = not explicit  # an explicit path is used as given, never installed into
        self._index: dict | None = None
        self._datasets: dict[str, tuple[dict, str]] = {}

    # -- inputs ---------------------------------------------------------------------------------------
    def sglang_index(self) -> dict:
        """The SGLang model-file index: a models directory, a wheel, or the wheel fetched from the index."""
        if self._index is None:
            src = Path(self.sglang) if self.sglang else None
            if src and src.is_dir():
                self._index = fbm.index_dir(src)
            else:
                wheel = src if src and src.is_file() else self._wheel()
                self._index = fbm.index_wheel(wheel, self.cache_dir)
        return self._index

    def _wheel(self) -> Path:
        wheels = self.cache_dir / "wheels"
        found = sorted(wheels.glob("sglang-*.whl"))
        if not found:
            import sys

            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   "-d", str(wheels), "sglang"], capture_output=True, text=True, timeout=600)
            found = sorted(wheels.glob("sglang-*.whl"))
            if not found:
                raise fbm.BaselineMissing(f"no sglang wheel: pip download failed: {proc.stderr.strip()[-300:]}")
        return found[-1]

    def dataset(self, workspace: Path) -> tuple[dict, str]:
        key = str(workspace)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(workspace, self.dataset_path)
        return self._datasets[key]

    # -- protocol ----------------------------------------------------------------------------------------
    def supported_types(self, workspace: Path) -> set[str]:
        # Entries are per checkpoint, not per model_type: an existing id is updated in place by apply,
        # so a type is never "already supported" as a whole.
        return set()

    def gap(self, workspace: Path, mappings: dict[str, dict]) -> list[str]:
        """Causal-LM types whose architecture is the root module of no models.ts entry; where the
        SGLang index can be had, only those SGLang implements (an entry follows its module tree)."""
        causal = mappings.get("text-generation", {})
        roots = {name for e in read_entries((workspace / MODELS_TS).read_text()) for name, m in
                 (e.get("modules") or {}).items() if not (m or {}).get("parent")}
        try:
            baselines = set(self.sglang_index().get("entries", {}))
        except (fbm.BaselineMissing, OSError):
            baselines = None
        out = []
        for model_type, classes in causal.items():
            names = {classes} if isinstance(classes, str) else set(classes or ())
            if names & roots or (baselines is not None and not names & baselines):
                continue
            out.append(model_type)
        return sorted(out)

    def pr_meta(self, analysis: dict, candidate: Candidate, workspace: Path,
                report: VerifyReport | None = None) -> PRMeta:
        name = candidate.params.get("name", analysis["model_type"])
        # Llama-3.1-8B and -70B share a model_type but are two entries, two PRs: the key is the entry id.
        return PRMeta(title=f"[models] Add {name} entry and kernel definitions", key=model_id(analysis)[0],
                      display_name=analysis["model_type"])

    def _design(self, a: dict, workspace: Path) -> dict:
        entry, module, mods = build_entry(self.sglang_index(), a, self.parallel)
        data, source = self.dataset(workspace)
        names = referenced(entry)
        missing = [n for n in names if n not in data]
        made, gaps = {}, {}
        for n in missing:
            d, how = defs.derive(n, data, entry["id"], {"tp": self.parallel.tp, "ep": self.parallel.ep})
            (made.__setitem__(n, (d, how)) if d else gaps.__setitem__(n, how))
        others = sorted({t for t in a.get("layer_pattern", []) if t not in ATTENTION_LAYERS | {"moe", "mlp"}})
        return {"entry": entry, "module": module, "mods": mods, "names": names, "made": made, "gaps": gaps,
                "dataset": data, "dataset_source": source, "untemplated_layers": others}

    def plan(self, analysis: dict, workspace: Path) -> Plan:
        try:
            design = self._design(analysis, workspace)
        except fbm.BaselineMissing as exc:
            return Plan(situation="S3", notes=[str(exc)], needs_llm=True,
                        checklist=["write the SGLang model first: FlashInfer-Bench entries follow its modules"])
        needs_llm = bool(design["gaps"] or design["untemplated_layers"])
        situation = "S3" if needs_llm else ("S2" if design["made"] else "S1")
        notes = [f"SGLang baseline: sglang/srt/models/{design['module']}.py",
                 f"dataset: {design['dataset_source']}"]
        notes += [f"needs an implementer: {n} ({why})" for n, why in design["gaps"].items()]
        notes += [f"needs an implementer: layer type {t} has no Definition template"
                  for t in design["untemplated_layers"]]
        files = [MODELS_TS, COVERAGE] + [self._def_path(d) for d, _ in design["made"].values()]
        return Plan(situation=situation, files=files, notes=notes, needs_llm=needs_llm, checklist=[
            "module tree from the SGLang model file, named after its attributes, counts from the config",
            f"Definition names per module at TP={self.parallel.tp}, EP={self.parallel.ep}",
            "insert the entry into models.ts (Prettier style) and a coverage row into model_coverage.mdx",
            "write a Definition JSON for every referenced name the dataset lacks",
            "prove: tsc --strict with the zod schema, semantic check, Definition model, CPU reference runs"])

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]:
        try:
            design = self._design(analysis, workspace)
        except fbm.BaselineMissing:
            return []
        e = design["entry"]
        return [Candidate(id=f"entry:{e['id']}:tp{self.parallel.tp}-ep{self.parallel.ep}",
                          base=f"sglang:{design['module']}", why="SGLang baseline module tree",
                          # base_class: what the shared PR body names as the thing followed
                          params={"id": e["id"], "name": e["name"], "tp": self.parallel.tp, "ep": self.parallel.ep,
                                  "base_class": f"sglang/srt/models/{design['module']}.py"})][:limit]

    @staticmethod
    def _def_path(d: dict) -> str:
        return f"{DEFS_DIR}/{d['op_type']}/{d['name']}.json"

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> Applied:
        design = self._design(analysis, workspace)
        entry = design["entry"]
        ts = workspace / MODELS_TS
        ts.write_text(upsert_entry(ts.read_text(), entry))
        files = [MODELS_TS]
        for d, _ in design["made"].values():
            path = workspace / self._def_path(d)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(d, indent=2) + "\n")
            files.append(self._def_path(d))
        cov = workspace / COVERAGE
        if cov.exists():
            names = design["names"] + sampling_names(analysis)
            row, section = coverage_section(entry, analysis, names, set(design["dataset"]), set(design["made"]))
            cov.write_text(upsert_coverage(cov.read_text(), row, section, entry["name"]))
            files.append(COVERAGE)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        write_host_file(ctx.work_dir / "summary.md", summary_report(design, self.parallel))  # a sandbox's dir
        notes = [f"SGLang baseline sglang/srt/models/{design['module']}.py", f"dataset: {design['dataset_source']}"]
        notes += [f"{n}: {how}" for n, (_, how) in design["made"].items()]
        notes += [f"needs an implementer: {n} ({why})" for n, why in design["gaps"].items()]
        return Applied(files=files, notes=notes)

    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox, run_tests: bool) -> VerifyReport:
        import time

        t0 = time.monotonic()
        # Verify what the workspace holds (a deterministic apply or an implementer's edits), not a re-plan.
        design = self._design(analysis, workspace)
        entry_id, timings = candidate.params.get("id") or design["entry"]["id"], {}
        checks = [Check(name="sglang_baseline", status="passed",
                        detail=f"sglang/srt/models/{design['module']}.py ({self.sglang_index().get('source')})")]
        paths = changed_definitions(workspace, set(design["dataset"]))
        written = {Path(f).stem for f in paths}
        gaps = [f"{n}: {why}" for n, why in design["gaps"].items() if n not in written]
        new_ops = any(parse_name(n) is None for n in written)  # an implementer added a new op family
        gaps += [f"layer type {t} ({analysis['layer_pattern'].count(t)} layers) has no Definition template"
                 for t in design["untemplated_layers"] if not new_ops]
        checks.append(Check(name="templates", status="failed" if gaps else "passed",
                            detail=("needs an implementer (LLM): " + "; ".join(gaps)) if gaps
                            else f"{len(written)} new definitions in the change"))
        text = (workspace / MODELS_TS).read_text()
        problems = semantic_problems(text, entry_id, analysis, set(design["dataset"]) | written)
        entry = next((e for e in read_entries(text) if e.get("id") == entry_id), {"modules": {}}) if not problems \
            else {"modules": {}}
        checks.append(Check(name="semantic", status="failed" if problems else "passed",
                            detail="; ".join(problems[:8]) or f"{len(entry['modules'])} modules, "
                            f"{len(referenced(entry))} definitions, counts match the config"))
        timings["semantic"] = round(time.monotonic() - t0, 3)
        t1 = time.monotonic()
        checks.append(self._tsc(workspace, ctx, sandbox))
        timings["tsc"] = round(time.monotonic() - t1, 3)
        if paths:
            from tools.targets.sandbox_job import run_job

            t2 = time.monotonic()
            job = run_job(sandbox, JOB, workspace, ctx, {"phase": "definitions", "definitions": paths}, ctx.timeout_s)
            # A reference run compares with the Definition's own numbers; the rest is whether it builds.
            checks += [Check(**{**c, "stage": "compare" if c["name"].startswith("reference:") else "build"})
                       for c in job["checks"]]
            timings["definitions"] = round(time.monotonic() - t2, 3)
        return VerifyReport.from_checks(checks, timings=timings)

    def _tsc(self, workspace: Path, ctx: JobContext, sandbox) -> Check:
        """`tsc --strict` over models.ts and the repository's zod schema, in the sandbox."""
        import shutil

        nm = Path(self.node_modules)
        if self.fetch_node_modules and not (nm / "typescript").is_dir() and shutil.which("npm"):
            # Fetched once from the npm registry into the cache (the sandbox itself has no network), in the
            # version ranges web/apps/web/package.json declares.
            subprocess.run(["npm", "install", "--prefix", str(nm.parent), "--no-audit", "--no-fund",
                            "typescript@^5.8.3", "zod@^3.25.67"], capture_output=True, text=True, timeout=300)
        return tsc_check(workspace, nm, ctx.work_dir, sandbox)


def summary_report(design: dict, p: fbm.Parallel) -> str:
    e = design["entry"]
    lines = [f"# {e['name']} ({e['id']})", "", f"- SGLang baseline: sglang/srt/models/{design['module']}.py",
             f"- dataset: {design['dataset_source']}", f"- TP={p.tp}, EP={p.ep}", "", "## Modules", ""]
    for name, mod in e["modules"].items():
        lines.append(f"- {name} ×{mod['count']} ({mod['type']}, parent {mod.get('parent', '-')}): "
                     f"{', '.join(mod['definitions']) or '—'}")
    lines += ["", "## New definitions", ""] + [f"- {n}: {how}" for n, (_, how) in design["made"].items()]
    lines += ["", "## Needs an implementer", ""] + [f"- {n}: {why}" for n, why in design["gaps"].items()]
    lines += [f"- layer type {t}: no template" for t in design["untemplated_layers"]]
    return "\n".join(lines) + "\n"
