"""FlashInfer-Bench: a model entry in models.ts, the kernel Definitions it needs, its coverage row.

Unlike optimum-intel the change is data, not Python: a TypeScript object in `web/apps/web/data/models.ts`
(module tree named after SGLang's attributes, counts from the config, Definition names per module under
a TP/EP setting), Definition JSON files for names the dataset lacks, and a row in the coverage page.
It is proved by the TypeScript compiler against the repository's zod schema, a semantic check of the
tree, the flashinfer_bench Definition model and a CPU run of every new reference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tools.targets import flashinfer_bench_defs as defs
from tools.targets import flashinfer_bench_model as fbm
from tools.targets.base import Candidate, Check, JobContext, Plan, VerifyReport

MODELS_TS = "web/apps/web/data/models.ts"
SCHEMA_DIR = "web/apps/web/lib/schemas"
COVERAGE = "docs/model_coverage.mdx"
DEFS_DIR = "flashinfer_trace/definitions"
PRINT_WIDTH = 100
OP_TYPE = {"fused_add_rmsnorm": "rmsnorm", "moe_ds": "moe", "moe_renorm": "moe"}  # name family -> op_type
ATTENTION_LAYERS = {"full_attention", "attention", "sliding_attention", "chunked_attention"}
JOB = Path(defs.__file__)


# -- models.ts as data ---------------------------------------------------------------------------------


def ts_to_json(text: str) -> str:
    """The object-literal subset Prettier writes (bare keys, double quotes, trailing commas) as JSON."""
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    text = re.sub(r'([{,]\s*)([A-Za-z_$][\w$]*)\s*:', r'\1"\2":', text)
    return re.sub(r",(\s*[}\]])", r"\1", text)


def _array_span(text: str) -> tuple[int, int]:
    m = re.search(r"const models: Model\[\] = \[", text)
    if not m:
        raise ValueError(f"{MODELS_TS}: no `const models: Model[] = [` array")
    end = text.rindex("\n]")
    return m.end() - 1, end + 2


def read_entries(text: str, strict: bool = False) -> list[dict]:
    start, end = _array_span(text)

    def pairs(items):
        keys = [k for k, _ in items]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup and strict:
            raise ValueError(f"duplicate key(s) {', '.join(sorted(dup))}")
        return dict(items)

    return json.loads(ts_to_json(text[start:end]), object_pairs_hook=pairs)


def render_entry(entry: dict) -> str:
    """One array element in Prettier's style for this file (2 spaces, no semicolons, width 100)."""
    q = json.dumps
    lines = ["  {", f"    id: {q(entry['id'])},", f"    name: {q(entry['name'])},",
             f"    description: {q(entry['description'])},", "    modules: {"]
    for name, mod in entry["modules"].items():
        key = name if re.fullmatch(r"[A-Za-z_$][\w$]*", name) else q(name)
        lines.append(f"      {key}: {{")
        lines.append(f"        count: {mod['count']},")
        if mod.get("parent"):
            lines.append(f"        parent: {q(mod['parent'])},")
        lines.append(f"        type: {q(mod['type'])},")
        if "definitions" in mod:
            one = "        definitions: [" + ", ".join(q(d) for d in mod["definitions"]) + "],"
            if len(one) <= PRINT_WIDTH:
                lines.append(one)
            else:
                lines += ["        definitions: ["] + [f"          {q(d)}," for d in mod["definitions"]] + ["        ],"]
        lines.append("      },")
    lines += ["    },", "  },"]
    return "\n".join(lines) + "\n"


def upsert_entry(text: str, entry: dict) -> str:
    """Insert `entry` at the end of the array, or replace the entry with the same id in place."""
    rendered = render_entry(entry)
    m = re.search(rf'\n  \{{\n    id: "{re.escape(entry["id"])}",\n.*?\n  \}},\n', text, flags=re.S)
    if m:
        return text[:m.start() + 1] + rendered + text[m.end():]
    _, end = _array_span(text)
    close = end - 2
    return text[:close + 1] + rendered + text[close + 1:]


# -- the entry -----------------------------------------------------------------------------------------


def _params(a: dict, active: bool) -> float:
    h, v = a.get("hidden_size") or 0, a.get("vocab_size") or 0
    q, kv, d = a.get("num_attention_heads") or 0, a.get("num_key_value_heads") or 0, a.get("head_dim") or 0
    counts = fbm.layer_counts(a)
    attn = 2 * h * q * d + 2 * h * kv * d
    dense = 3 * h * (a.get("intermediate_size") or 0)
    moe = a.get("moe") or {}
    per_expert = 3 * h * (moe.get("moe_intermediate_size") or 0)
    experts = (moe.get("top_k") or 0) if active else (moe.get("num_experts") or 0)
    sparse = per_expert * (experts + (moe.get("num_shared_experts") or 0)) + h * (moe.get("num_experts") or 0)
    embed = v * h * (1 if a.get("tie_word_embeddings") else 2)
    return counts["layers"] * attn + counts["dense"] * dense + counts["moe"] * sparse + embed


def model_id(a: dict) -> tuple[str, str]:
    """(id, display name) from the config alone: family plus parameter count, e.g. llama-8b, qwen3-moe-30b-a3b.

    The Hub name of the checkpoint is not part of the analysis the graph hands a target.
    """
    total = f"{round(_params(a, False) / 1e9)}b"
    size = total + (f"-a{round(_params(a, True) / 1e9)}b" if a.get("moe") else "")
    family = a["model_type"].replace("_", "-")
    try:
        from transformers.models.auto.configuration_auto import MODEL_NAMES_MAPPING
        display = MODEL_NAMES_MAPPING.get(a["model_type"], family)
    except ImportError:  # pragma: no cover
        display = family
    return f"{family}-{size}", f"{display} {size.upper().replace('-', ' ')}"


def architecture_label(a: dict) -> str:
    attn = "MLA" if a.get("mla") else "GQA"
    counts = fbm.layer_counts(a)
    ffn = "Dense" if not counts["moe"] else ("MoE" if not counts["dense"] else "Dense/MoE")
    return f"{attn} + {ffn}"


def build_entry(index: dict, a: dict, p: fbm.Parallel) -> tuple[dict, str, list[fbm.Module]]:
    """(entry, SGLang module file, modules) for analysis `a`."""
    arch = (a.get("architectures") or [""])[0]
    module, mods = fbm.build_tree(index, arch, fbm.layer_counts(a))
    mods = fbm.prune_for_config(mods, a)
    for m in mods:
        m.definitions = defs.definitions_for(m, a, p) if m.type == "layer" else []
    ident, name = model_id(a)
    entry = {"id": ident, "name": name,
             "description": f"{name} ({architecture_label(a)}, {fbm.layer_counts(a)['layers']} layers), "
                            f"kernels at TP={p.tp}, EP={p.ep}.",
             "modules": {}}
    for m in mods:
        body = {"count": m.count, "type": m.type, "definitions": m.definitions}
        if m.parent:
            body["parent"] = m.parent
        entry["modules"][m.name] = body
    return entry, module, mods


def referenced(entry: dict) -> list[str]:
    seen: list[str] = []
    for mod in entry["modules"].values():
        seen += [d for d in mod.get("definitions", []) if d not in seen]
    return seen


def sampling_names(a: dict) -> list[str]:
    v = a.get("vocab_size")
    return [f"{k}_sampling_from_probs_v{v}" for k in ("top_k", "top_k_top_p", "top_p")] if v else []


# -- semantic check --------------------------------------------------------------------------------------


def semantic_problems(text: str, entry_id: str, a: dict, known: set[str]) -> list[str]:
    """Everything wrong with the entry `entry_id` as it stands in the file (empty when it is sound)."""
    try:
        entries = read_entries(text, strict=True)
    except ValueError as exc:
        return [f"models.ts does not parse: {exc}"]
    ids = [e.get("id") for e in entries]
    if ids.count(entry_id) != 1:
        return [f"expected one entry {entry_id!r}, found {ids.count(entry_id)}"]
    entry = entries[ids.index(entry_id)]
    mods = entry.get("modules") or {}
    out = []
    for name, mod in mods.items():
        if mod.get("type") not in ("block", "layer"):
            out.append(f"{name}: type {mod.get('type')!r} is neither block nor layer")
        if mod.get("parent") is not None and mod["parent"] not in mods:
            out.append(f"{name}: parent {mod['parent']!r} does not exist")
        if not isinstance(mod.get("count"), int) or mod["count"] < 1:
            out.append(f"{name}: count {mod.get('count')!r} is not a positive integer")
        for d in mod.get("definitions", []):
            if d not in known:
                out.append(f"{name}: definition {d} is neither in the dataset nor in this change")
    counts = fbm.layer_counts(a)
    decoder = [n for n in mods if n.endswith("DecoderLayer")]
    if len(decoder) != 1 or mods[decoder[0]]["count"] != counts["layers"]:
        out.append(f"decoder layer count {[mods[n]['count'] for n in decoder]} != config {counts['layers']}")
    for kind, block in (("moe", "moe"), ("dense", "mlp_dense")):
        if block in mods and mods[block]["count"] != counts[kind]:
            out.append(f"{block} count {mods[block]['count']} != config {kind} layers {counts[kind]}")
    if counts["moe"] and "moe" not in mods:
        out.append(f"config has {counts['moe']} MoE layers but the entry has no moe block")
    if counts["moe"] and counts["dense"] and "mlp_dense" not in mods:
        out.append(f"config has {counts['dense']} dense feed-forward layers but the entry has no mlp_dense block")
    return out


# -- dataset, coverage ---------------------------------------------------------------------------------


def load_dataset(workspace: Path, explicit: str | None) -> tuple[dict[str, dict], str]:
    """(name -> Definition, where it came from): --dataset PATH, else the workspace's committed tree or its
    history (the last revision that still had the definitions), else none.

    Committed revisions only: files this change writes must never count as the dataset. The upstream Hub
    dataset is not tried: it needs the network, and a run must not depend on it.
    """
    if explicit:
        root = Path(explicit)
        found = {p.stem: json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}
        return {k: v for k, v in found.items() if "axes" in v}, f"dataset directory {root}"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(workspace), *args], capture_output=True, text=True,
                              timeout=60, check=True).stdout

    try:
        rev = "HEAD"
        files = git("ls-tree", "-r", "--name-only", rev, DEFS_DIR).split()
        if not files:
            last = git("log", "-1", "--format=%H", "--", DEFS_DIR).strip()
            rev = f"{last}^" if last else ""
            files = git("ls-tree", "-r", "--name-only", rev, DEFS_DIR).split() if rev else []
        if files:
            out = {Path(f).stem: json.loads(git("show", f"{rev}:{f}")) for f in files if f.endswith(".json")}
            where = git("rev-parse", "--short=12", rev).strip()
            return out, f"repository {'tree' if rev == 'HEAD' else 'history'} at {where} ({DEFS_DIR})"
    except (subprocess.SubprocessError, ValueError, OSError):
        pass
    return {}, "none (no --dataset and no definitions in the repository or its history)"


def coverage_section(entry: dict, a: dict, names: list[str], dataset: set[str], new: set[str]) -> tuple[str, str]:
    """(summary table row, model section) for docs/model_coverage.mdx."""
    present = [n for n in names if n in dataset or n in new]
    status = "✅ Fully covered" if len(present) == len(names) and not new else "🟡 Partial"
    row = f"| {entry['name']} | {architecture_label(a)} | {status} |"
    counts = fbm.layer_counts(a)
    lines = [f"## {entry['name']}", "",
             f"**Architecture**: {counts['layers']} decoder layers ({counts['dense']} dense, {counts['moe']} MoE), "
             f"{architecture_label(a)}. Generated for TP and EP given in the entry description.", "",
             "| Definition | Op Type | Status |", "|-----------|---------|:------:|"]
    for n in names:
        family = (defs.parse_name(n) or ("?", {}, ""))[0]
        op = OP_TYPE.get(family, family)
        lines.append(f"| `{n}` | {op} | {'🟡' if n in new else ('✅' if n in dataset else '❌')} |")
    lines += ["", f"**Coverage**: {len(present)} / {len(names)} definitions present"
              + (f"; {len(new)} added by this change (workloads not yet collected)." if new else "."), "", "---", ""]
    return row, "\n".join(lines)


def upsert_coverage(text: str, row: str, section: str, name: str) -> str:
    if f"\n## {name}\n" in text:  # replace our own earlier section for this model
        text = re.sub(rf"\n## {re.escape(name)}\n.*?\n---\n", "\n" + section.rstrip("\n").rsplit("\n", 1)[0]
                      + "\n---\n", text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    rows = [m for m in re.finditer(r"^\| [^\n]* \| [^\n]* \| [^\n]* \|$", text, flags=re.M)
            if "Coverage |" not in m.group(0)]
    summary = [m for m in rows if m.start() < text.find("\n## ", text.find("## Summary") + 1)]
    existing = next((m for m in summary if m.group(0).startswith(f"| {name} |")), None)
    if existing:
        return text[:existing.start()] + row + text[existing.end():]
    if summary:
        at = summary[-1].end()
        return text[:at] + "\n" + row + text[at:]
    return text


# -- the target --------------------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class FlashInferBenchTarget:
    name = "flashinfer-bench"
    default_repo = "https://github.com/flashinfer-ai/flashinfer-bench.git"
    pypi_name = "flashinfer-bench"
    references = None  # earlier entries are data in one file; the SGLang baseline is the reference

    def __init__(self, cache_dir: Path, parallel: fbm.Parallel | None = None, dataset: str | None = None,
                 sglang: str | None = None, node_modules: str | None = None):
        # Overrides come from the environment until the CLI carries target options (--tp, --ep, --dataset).
        self.cache_dir = Path(cache_dir) / "flashinfer-bench"
        self.parallel = parallel or fbm.Parallel(_env_int("FIB_ONBOARD_TP", 1), _env_int("FIB_ONBOARD_EP", 1))
        self.dataset_path = dataset or os.environ.get("FIB_ONBOARD_DATASET")
        self.sglang = sglang or os.environ.get("FIB_ONBOARD_SGLANG")
        explicit = node_modules or os.environ.get("FIB_ONBOARD_NODE_MODULES")
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
        # Entries are per checkpoint, not per model_type: an existing id is updated in place by apply.
        return set()

    def min_transformers_version(self, model_type: str) -> tuple[str, str]:
        return "n/a", "FlashInfer-Bench entries are data; they do not load the model with transformers"

    def display_name(self, model_type: str) -> str:
        return model_type

    def pr_title(self, analysis: dict, candidate: Candidate) -> str:
        return f"[models] Add {candidate.params.get('name', analysis['model_type'])} entry and kernel definitions"

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

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> tuple[list[str], list[str]]:
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
        (ctx.work_dir / "summary.md").write_text(summary_report(design, self.parallel))
        notes = [f"SGLang baseline sglang/srt/models/{design['module']}.py", f"dataset: {design['dataset_source']}"]
        notes += [f"{n}: {how}" for n, (_, how) in design["made"].items()]
        notes += [f"needs an implementer: {n} ({why})" for n, why in design["gaps"].items()]
        return files, notes

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
        new_ops = any(defs.parse_name(n) is None for n in written)  # an implementer added a new op family
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
            from tools.targets.verify_runner import run_job

            t2 = time.monotonic()
            job = run_job(sandbox, JOB, workspace, ctx, {"phase": "definitions", "definitions": paths}, ctx.timeout_s)
            checks += [Check(**c) for c in job["checks"]]
            timings["definitions"] = round(time.monotonic() - t2, 3)
        failed = [c for c in checks if c.status == "failed"]
        return VerifyReport(passed=not failed, checks=checks, timings=timings,
                            first_failure=f"{failed[0].name}: {failed[0].detail}" if failed else "")

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


def changed_definitions(workspace: Path, dataset: set[str]) -> list[str]:
    """Definition files this change adds or edits (relative paths): what the sandbox job must prove."""
    try:
        out = subprocess.run(["git", "-C", str(workspace), "status", "--porcelain", "--untracked-files=all", "--",
                              DEFS_DIR], capture_output=True, text=True, timeout=60, check=True).stdout
        return sorted(line[3:] for line in out.splitlines() if line[3:].endswith(".json") and line[:2] != " D")
    except (subprocess.SubprocessError, OSError):  # not a git checkout: whatever is on disk and not in the dataset
        root = workspace / DEFS_DIR
        return sorted(str(f.relative_to(workspace)) for f in root.rglob("*.json") if f.stem not in dataset) \
            if root.is_dir() else []


def tsc_check(workspace: Path, node_modules: Path, work_dir: Path, sandbox) -> Check:
    import shutil

    from sandboxes.base import Limits, Mount

    if getattr(sandbox, "name", "") != "local":
        return Check(name="tsc", status="skipped",
                     detail=f"node is not installed in the {getattr(sandbox, 'name', '?')} sandbox image")
    node = shutil.which("node")
    tsc = node_modules / "typescript" / "bin" / "tsc"
    if not node or not tsc.is_file() or not (node_modules / "zod").is_dir():
        return Check(name="tsc", status="skipped",
                     detail=f"needs node ({node or 'missing'}) and typescript + zod in {node_modules} "
                            f"(npm install --prefix {node_modules.parent} typescript zod@3)")
    work_dir.mkdir(parents=True, exist_ok=True)
    m_ws, m_nm = Mount(workspace.resolve(), "/workspace", True), Mount(node_modules.resolve(), "/node_modules", True)
    m_out = Mount(work_dir.resolve(), "/out", False)
    web = f"{sandbox.inside(m_ws)}/web/apps/web"
    config = {"compilerOptions": {"strict": True, "noEmit": True, "target": "es2020", "module": "esnext",
                                  "moduleResolution": "bundler", "skipLibCheck": True, "types": [],
                                  "paths": {"@/*": [f"{web}/*"], "zod": [f"{sandbox.inside(m_nm)}/zod"]}},
              "files": [f"{web}/data/models.ts"]}
    (work_dir / "tsconfig.fib.json").write_text(json.dumps(config, indent=2))
    res = sandbox.run([node, f"{sandbox.inside(m_nm)}/typescript/bin/tsc", "-p",
                       f"{sandbox.inside(m_out)}/tsconfig.fib.json"], mounts=[m_ws, m_nm, m_out],
                      workdir=m_out, limits=Limits(timeout_s=300))
    (work_dir / "tsc.log").write_text(res.stdout + res.stderr)
    if res.status == "ok":
        return Check(name="tsc", status="passed", detail="tsc --strict: no errors in models.ts with the zod schema",
                     metrics={"seconds": round(res.duration_s, 2)})
    errors = [line for line in (res.stdout + res.stderr).splitlines() if "error" in line][:5]
    return Check(name="tsc", status="failed", detail=" | ".join(errors)[:600] or f"tsc {res.status}: {res.reason}")


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
