"""aiconfigurator: an architecture → family entry, its parser fields, a packaged config, a default model.

aiconfigurator estimates serving latency from an analytic model of each layer's ops over measured kernel
data; onboarding is teaching it to count the new model's layers. The plan reads the workspace's registry
(registry.py), finds the family that counts every layer kind (families.py) and writes the registration
and parser change (writer.py). Verification runs in the target's own environment (the released engine
extension over the workspace's Python source): the parser's fields, the MoE decision, `cli estimate`
(TTFT/TPOT) and the repository's parser/model/backend unit tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from sandboxes.envs import SandboxEnv
from tools.targets.aiconfigurator import families as fam
from tools.targets.aiconfigurator import registry as regmod
from tools.targets.aiconfigurator import writer
from tools.targets.aiconfigurator.checks import TEST_PATHS, expected_fields, family_fit, job_spec
from tools.targets.base import (REPO_ROOT, Applied, BaseTarget, Candidate, Check, JobContext, Plan, PRMeta,
                                 VerifyReport)

ENV = SandboxEnv(name="aiconfigurator", dir=REPO_ROOT / "sandboxes" / "targets" / "aiconfigurator")
S3_CHECKLIST = [
    "a model class registered for a new family that counts each layer kind with its own scale "
    "(e.g. pattern.count(kind)), never num_layers for every op",
    "deferred per-layer initialisation: keep the parsed pattern on the instance before super().__init__ "
    "builds the ops (NemotronHModel is the pattern)",
    "the family in ModelFamily and, when it has MoE layers, in _MOE_MODEL_FAMILIES (check_is_moe)",
    "MTP: scale generation ops with mtp_scale_factor when num_nextn_predict_layers > 0",
    "a config dataclass and a parser branch filling it (list or scalar layer patterns, nested text_config)",
    "the family map entry, the packaged config and the default-model entry; a parser unit test",
]


class AIConfiguratorSettings(BaseSettings):
    """ONBOARD_AIC_HF_ID: the checkpoint id (Org/Model) when the config does not name it."""

    model_config = SettingsConfigDict(env_prefix="ONBOARD_AIC_")
    hf_id: str | None = None


def architecture(analysis: dict) -> str:
    archs = analysis.get("architectures") or (analysis.get("raw_text_config") or {}).get("architectures") or []
    if not archs:
        raise regmod.RegistryError(f"{analysis.get('model_type')}: config.json names no architecture")
    return archs[0]


def full_config(analysis: dict) -> dict:
    """The config as the checkpoint ships it: the whole raw config when the analysis carries it, else
    rebuilt from the text config (a VLM's top-level vision_config and quantization_config are then lost)."""
    if isinstance(analysis.get("raw_config"), dict):
        return dict(analysis["raw_config"])
    text = dict(analysis.get("raw_text_config") or {})
    key = analysis.get("text_config_key")
    if not key:
        return text
    return {"architectures": analysis.get("architectures") or [], "model_type": analysis["model_type"], key: text}


class AIConfiguratorTarget(BaseTarget):
    key = "aiconfigurator"
    default_repo = "https://github.com/ai-dynamo/aiconfigurator.git"
    pypi_name = None  # its sdists hold neither the tests nor the model configs the change is made of
    env = ENV
    marker = "aic-core/src/aiconfigurator_core/sdk/common.py"
    needs_tiny_model = False  # the estimate is analytic: no weights are ever loaded
    done_when = ("the parser returns the config's layers, heads, experts and per-layer pattern, the MoE decision "
                 "matches the config, `aiconfigurator cli estimate` returns TTFT and TPOT, and the repository's "
                 "parser, model and backend unit tests pass")

    def __init__(self, cache_dir: Path, hf_id: str | None = None):
        super().__init__(Path(cache_dir) / "aiconfigurator")
        self.hf_id = hf_id or AIConfiguratorSettings().hf_id

    def references(self):
        from tools.targets.aiconfigurator.references import AIConfiguratorReferences

        return AIConfiguratorReferences()

    # -- reading -----------------------------------------------------------------------------------------
    def checkpoint_id(self, analysis: dict) -> str | None:
        named = self.hf_id or (analysis.get("raw_text_config") or {}).get("_name_or_path") or ""
        return named if writer.HF_ID.fullmatch(named) else None

    def supported_types(self, workspace: Path) -> set[str]:
        reg = regmod.read(workspace)
        by_arch = _types_by_arch(workspace, reg)
        return {t for arch in reg.arch_to_family for t in by_arch.get(arch, ())}

    def gap(self, workspace: Path, mappings: dict[str, dict]) -> list[str]:
        """Causal-LM types none of whose transformers classes is in the workspace's family map."""
        mapped = regmod.read(workspace).arch_to_family
        out = []
        for model_type, classes in mappings.get("text-generation", {}).items():
            names = {classes} if isinstance(classes, str) else set(classes or ())
            if not names & mapped.keys():
                out.append(model_type)
        return sorted(out)

    def _design(self, analysis: dict, workspace: Path, family: str | None = None) -> dict:
        reg = regmod.read(workspace)
        arch = architecture(analysis)
        n = fam.needs(analysis)
        rows = fam.ranked(n, reg.families)
        mapped = reg.arch_to_family.get(arch)
        if family is None:
            family = mapped or self._first_workable(analysis, workspace, rows) or (rows[0][0] if rows else None)
        row = next((r for r in rows if r[0] == family), (family, [], []))
        fits = family is not None and not row[1] and (family in fam.PROFILES or mapped == family)
        pplan = fam.parser_plan(reg, family, arch, analysis) if family else None
        if not fits or pplan.how == "missing":
            situation = "S3"
        elif pplan.how == "new_branch" or pplan.text_key:
            situation = "S2"
        else:
            situation = "S1"
        return {"reg": reg, "arch": arch, "needs": n, "rows": rows, "family": family, "hard": row[1],
                "soft": row[2], "parser": pplan, "situation": situation}

    # -- protocol ----------------------------------------------------------------------------------------
    def plan(self, analysis: dict, workspace: Path) -> Plan:
        d = self._design(analysis, workspace)
        reg, p = d["reg"], d["parser"]
        notes = [f"architecture {d['arch']}"] + d["needs"].evidence
        for name, hard, soft in d["rows"][:4]:
            notes.append(f"family {name}: " + ("; ".join(hard + soft) if hard or soft else "counts every layer kind"))
        notes.append(f"chosen family: {d['family']} ({d['situation']})")
        if p and p.branch:
            reads = ", ".join(p.branch.required + p.branch.optional) or "nothing"
            notes.append(f"closest parser branch: {' / '.join(p.branch.archs)} (reads {reads})")
        if p and p.normalise:
            notes.append(f"parser must expand {', '.join(p.normalise)} into layer_types")
        if p and p.missing:
            notes.append(f"config lacks what the branch reads: {', '.join(p.missing)}")
        if p and p.text_key:
            notes.append(f"nested {p.text_key}: MULTIMODAL_TEXT_CONFIG_KEY needs the architecture")
        if analysis.get("quantization"):  # config.json's quantization_config or hf_quant_config.json's block
            notes.append(f"quantization {analysis['quantization']}: kept in the packaged config, which the "
                         "estimator reads for its default quant modes")
        hf_id = self.checkpoint_id(analysis)
        if not hf_id:
            notes.append("no checkpoint id (set ONBOARD_AIC_HF_ID=Org/Model): the packaged config and the "
                         "default-model entry are skipped")
        files = [reg.common, reg.utils, "tests/unit/sdk/test_utils.py"]
        if hf_id:
            files.append(f"{reg.configs_dir}/{writer.config_file_name(hf_id)}")
        if d["situation"] == "S3":
            why = "; ".join(d["hard"] + d["soft"]) or "; ".join(p.missing if p else [])
            notes.insert(0, f"S3: no family counts every layer kind of {d['arch']} — nearest {d['family']}: {why}")
            return Plan(situation="S3", files=files + [f"{reg.sdk}/models/"], notes=notes, needs_llm=True,
                        checklist=S3_CHECKLIST)
        return Plan(situation=d["situation"], files=files, notes=notes, checklist=[
            f"ARCHITECTURE_TO_MODEL_FAMILY: {d['arch']} → {d['family']}",
            "packaged config <Org>--<Model>_config.json and the DefaultHFModels entry (retired ⊆ default)",
            "parser: " + {"generic": "the generic fields suffice", "join": "join the closest branch",
                          "new_branch": "a branch modelled on the closest one"}[p.how],
            "a parser unit test in tests/unit/sdk/test_utils.py",
            "prove: parser fields, MoE decision, cli estimate (HYBRID/SOL), repository unit tests"])

    def _first_workable(self, analysis: dict, workspace: Path, rows: list) -> str | None:
        for name, hard, _ in rows:
            if not hard:
                x = self._design(analysis, workspace, family=name)
                if x["situation"] != "S3" and not _spare_hybrid(x):
                    return name
        return None

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]:
        """Families that count every layer kind and whose parser change is known (S1/S2), best first;
        when there is none, the nearest family as an S3 scaffold the implementer starts from."""
        d = self._design(analysis, workspace)
        designs = [self._design(analysis, workspace, family=name) for name, _, _ in d["rows"]]
        if d["family"] not in [x["family"] for x in designs]:  # a mapped family without a profile
            designs.insert(0, d)
        # A hybrid family (its own parser branch) for a model without its extra layer kinds is not a fit.
        workable = [x for x in designs if x["situation"] != "S3" and not _spare_hybrid(x)]
        chosen = workable or designs[:1]
        out = []
        for x in chosen[:limit]:
            p = x["parser"]
            base = " / ".join(p.branch.archs) if p and p.branch else x["family"]
            kind = "s3" if x["situation"] == "S3" else p.how
            out.append(Candidate(id=f"family:{x['family']}:{kind}", base=base, patterns=[kind],
                                 why="; ".join(x["hard"] + x["soft"]) or "counts every layer kind",
                                 params={"family": x["family"], "arch": x["arch"], "base_class": base,
                                         "situation": x["situation"]}))
        return out

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> Applied:
        d = self._design(analysis, workspace, family=candidate.params["family"])
        reg, arch, family, p = d["reg"], d["arch"], d["family"], d["parser"]
        files, notes = [], []
        if reg.arch_to_family.get(arch) != family:
            files.append(writer.add_dict_entry(workspace, reg, "ARCHITECTURE_TO_MODEL_FAMILY", arch, family, family))
        if p and p.text_key:
            files.append(writer.add_dict_entry(workspace, regmod.read(workspace), "MULTIMODAL_TEXT_CONFIG_KEY", arch,
                                               p.text_key, p.text_key))
        hf_id = self.checkpoint_id(analysis)
        if hf_id:
            rel = f"{reg.configs_dir}/{writer.config_file_name(hf_id)}"
            if (workspace / rel).is_file():
                notes.append(f"{rel} already packaged: kept as is")
            else:
                files.append(writer.write_config(workspace, reg, hf_id, full_config(analysis)))
                if analysis.get("text_config_key") and "raw_config" not in analysis:
                    notes.append(f"{rel}: rebuilt from the nested text config; the checkpoint's top-level "
                                 "vision_config/quantization_config were not available to copy")
            files.append(writer.add_default_model(workspace, regmod.read(workspace), hf_id))
        else:
            notes.append("no checkpoint id: packaged config and DefaultHFModels entry skipped")
        reg = regmod.read(workspace)
        if p and p.how == "join" and arch not in p.branch.archs:
            p.branch = reg.branch_for(p.branch.archs[0])
            files.append(writer.join_branch(workspace, reg, arch, p))
        elif p and p.how == "new_branch" and reg.branch_for(arch) is None:
            p.branch = reg.branch_for(p.branch.archs[0])
            files.append(writer.new_branch(workspace, reg, arch, p))
        exp, counts = expected_fields(analysis)
        extra = ("layer_types" if p and p.branch and "layer_types" in p.branch.required + p.branch.optional
                 and family in ("QWEN35", "GEMMA4MIX") else None)
        if d["situation"] != "S3":
            test = writer.parser_test(workspace, arch, _test_config(analysis, p), exp, counts, extra)
            files.append(test) if test else notes.append("tests/unit/sdk/test_utils.py missing: no parser test")
        else:
            notes.append(f"S3 scaffold on {family}: " + "; ".join(d["hard"]) + " — needs an implementer (LLM)")
        notes += d["soft"]
        return Applied(files=sorted(set(f for f in files if f)), notes=notes)

    # -- replaying history (`onboard bench history`) ---------------------------------------------------
    def history_cases(self, mirror: Path, cache_dir: Path):
        from tools.targets.aiconfigurator.history import history_cases

        return history_cases(mirror, self.references(), cache_dir)

    def history_base_problem(self, workspace: Path, sandbox, work_dir: Path) -> str | None:
        from tools.targets.aiconfigurator.history import base_problem

        return base_problem(workspace, self.marker)

    def history_strip(self, workspace: Path, case, mirror: Path) -> str | None:
        from tools.targets.aiconfigurator.history import strip

        return strip(workspace, case, mirror)

    def compare_history(self, case, ours: Path, upstream: Path, our_diff: str, upstream_diff: str,
                        ctx: JobContext, sandbox):
        """Upstream's test files run by the same job as `verify`, on our change and upstream's config."""
        from tools.hf.config import analyze, load_config
        from tools.targets.aiconfigurator.history import compare
        from tools.targets.sandbox_job import run_job

        analysis = analyze(load_config(case.model).raw).model_dump(mode="json")

        def run_tests(files: list[str]) -> Check:
            model_dir = ctx.work_dir / "model"
            model_dir.mkdir(parents=True, exist_ok=True)
            (model_dir / "config.json").write_text(json.dumps(full_config(analysis), indent=2))
            empty = ctx.work_dir / "no-tiny"
            empty.mkdir(exist_ok=True)
            spec = {**job_spec(analysis, case.facts["architecture"], True), "tests": files}
            job = run_job(sandbox, ENV.job_path, ours, ctx.model_copy(update={"tiny_dir": empty}), spec,
                          ctx.tests_timeout_s)
            found = [Check(**c) for c in job.get("checks", []) if c["name"] in ("repo_tests", "environment")
                     or c["name"].startswith("sandbox:")]
            return found[0] if found else Check(name="repo_tests", status="failed", stage="tests",
                                                detail="the job reported no test run")

        return compare(case, ours, upstream, our_diff, upstream_diff, run_tests)

    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox, run_tests: bool) -> VerifyReport:
        from tools.targets.sandbox_job import run_job

        t0 = time.monotonic()
        reg = regmod.read(workspace)  # what the workspace holds now: a deterministic apply or an implementer's
        arch = architecture(analysis)
        checks = [family_fit(reg, arch, analysis)]
        model_dir = ctx.work_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "config.json").write_text(json.dumps(full_config(analysis), indent=2))
        empty = ctx.work_dir / "no-tiny"  # run_job mounts a tiny-model dir; this target has none
        empty.mkdir(exist_ok=True)
        spec = job_spec(analysis, arch, run_tests)
        job = run_job(sandbox, ENV.job_path, workspace, ctx.model_copy(update={"tiny_dir": empty}), spec,
                      ctx.tests_timeout_s if run_tests else ctx.timeout_s)
        checks += [Check(**c) for c in job.get("checks", [])]
        timings = {**job.get("timings", {}), "verify": round(time.monotonic() - t0, 3)}
        # No reference latency exists for a new model: the score stays None, TTFT/TPOT are in the metrics.
        return VerifyReport.from_checks(checks, score=None, score_label="", timings=timings)

    def pr_meta(self, analysis: dict, candidate: Candidate, workspace: Path, report=None) -> PRMeta:
        arch = candidate.params.get("arch") or architecture(analysis)
        args = " ".join(job_spec(analysis, arch, False)["estimate_args"])
        return PRMeta(title=f"feat(models): support {arch} ({candidate.params.get('family')} family)",
                      key=analysis["model_type"], display_name=arch, reproduce=[
                          "pytest -o addopts='' " + " ".join(TEST_PATHS),
                          f"python -m aiconfigurator.main cli estimate --model-path MODEL_DIR {args} "
                          "--database-mode HYBRID"])


def _spare_hybrid(design: dict) -> bool:
    p = fam.PROFILES.get(design["family"])
    return bool(p and p.needs_branch and p.attn - design["needs"].attn)


def _test_config(analysis: dict, p) -> dict:
    """The config fields the parser test needs: the generic ones and what the branch reads."""
    full = full_config(analysis)
    text = analysis.get("raw_text_config") or {}
    keep = {"num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
            "intermediate_size", "vocab_size", "max_position_embeddings", "num_experts_per_tok", "num_experts",
            "num_local_experts", "n_routed_experts", "moe_intermediate_size", "layer_types"}
    if p and p.branch:
        keep |= set(p.branch.required + p.branch.optional) | set(p.normalise)
    inner = {k: v for k, v in text.items() if k in keep}
    if analysis.get("text_config_key"):
        return {"architectures": full["architectures"], analysis["text_config_key"]: inner}
    return {"architectures": [architecture(analysis)], **inner}


def _types_by_arch(workspace: Path, reg: regmod.Registry) -> dict[str, set[str]]:
    """Architecture → model types, from the workspace's packaged configs and transformers' auto maps."""
    out: dict[str, set[str]] = {}
    for f in sorted((workspace / reg.configs_dir).glob("*_config.json")):
        try:
            raw = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        for a in raw.get("architectures") or []:
            if raw.get("model_type"):
                out.setdefault(a, set()).add(raw["model_type"])
    try:
        from transformers.models.auto import modeling_auto as ma
    except ImportError:  # pragma: no cover - transformers is a dependency of the host
        return out
    for name in ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"):
        for model_type, cls in getattr(ma, name, {}).items():
            for c in (cls,) if isinstance(cls, str) else cls:
                out.setdefault(c, set()).add(model_type)
    return out
