"""NeMo AutoModel: a custom implementation (grouped experts, combined projections) behind the registry.

The workspace's `MODEL_ARCH_MAPPING` says what is supported. A new architecture is classified (dense,
MoE, VLM) and compared with every registered implementation (search.py); when one covers it, only the
registry entry, recipe and docs are written (an alias); otherwise its directory is derived from the
closest one by anchored edits (derive.py), and what no edit covers goes to the implementer with the
evidence. Verification runs in the target's own environment (the checkout's source, CPU torch, the
transformers the repository pins): provenance of every checkpoint element, exact round trip, float32
logits parity against transformers, training steps, then the generated adapter tests and the
registry-wide invariant tests of the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from sandboxes.envs import SandboxEnv
from tools.targets.base import (REPO_ROOT, Applied, BaseTarget, Candidate, Check, JobContext, Plan, PRMeta,
                                 Stage, VerifyReport)
from tools.targets.nemo_automodel import extras
from tools.targets.nemo_automodel.derive import derive, write
from tools.targets.nemo_automodel.features import classify
from tools.targets.nemo_automodel.registry import REGISTRY, add_arch, arch_mapping, custom_configs
from tools.targets.nemo_automodel.search import arch_of, candidates, matches, names_for
from tools.targets.nemo_automodel.tiny import derive_tiny, write_tiny

ENV = SandboxEnv(name="nemo-automodel", dir=REPO_ROOT / "sandboxes" / "targets" / "nemo_automodel")
JOB = ENV.job_path
TEMPLATE = Path(__file__).with_name("adapter_test.py.tmpl")
# The acceptance bound of this target: fp32 logits within 1e-5 of transformers (measured: ≤ 7e-7).
TOLERANCE = 1e-5
INVARIANT_TESTS = tuple(f"tests/unit_tests/_transformers/test_{n}.py" for n in
                        ("registry", "tie_support_registry", "model_capabilities", "doc_coverage",
                         "recipe_doc_coverage"))
COMPARE_CHECKS = {"logits_parity", "training"}


def stage_of(name: str) -> Stage:
    if name.startswith("tests:"):
        return "tests"
    return "compare" if name in COMPARE_CHECKS else "build"


def _kind(analysis: dict) -> str:
    raw = analysis.get("raw_text_config") or {}
    if analysis.get("kind") == "vlm" or analysis.get("text_config_key"):
        return "vlm"
    return "moe" if analysis.get("kind") == "moe" or classify(raw) == "moe" else "dense"


def _test_path(model_type: str) -> str:
    t = model_type.replace("-", "_")
    return f"tests/unit_tests/models/{t}/test_{t}_state_dict_adapter.py"


class NemoAutoModelTarget(BaseTarget):
    key = "nemo-automodel"
    default_repo = "https://github.com/NVIDIA-NeMo/Automodel.git"
    pypi_name = None  # the wheel pins another transformers and ships no tests: the repository only
    env = ENV
    marker = REGISTRY
    # The tiny config is derived from the real config.json here and built in the sandbox with the
    # transformers the repository pins; the host's transformers (another version) never builds it.
    needs_tiny_model = False
    done_when = ("the architecture is registered in MODEL_ARCH_MAPPING, every checkpoint tensor (router, "
                 "each routed expert in its own slot, shared experts) lands where it belongs, "
                 "to_hf(from_hf(sd)) is exact, float32 logits match transformers within 1e-5 on a tiny "
                 "config derived from the real config.json, training steps reduce the loss, and the "
                 "adapter tests and the repository's registry-wide tests pass on CPU")

    def supported_types(self, workspace: Path) -> set[str]:
        from transformers.models.auto import modeling_auto as m

        archs = set(arch_mapping(workspace))
        out = {t for table in (m.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, m.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
               for t, name in table.items() if name in archs}
        return out | set(custom_configs(workspace))

    def plan(self, analysis: dict, workspace: Path) -> Plan:
        kind = _kind(analysis)
        arch = arch_of(analysis)
        found = matches(analysis, workspace, kind)
        best = found[0] if found else None
        notes = [f"kind: {kind}; architecture {arch}"]
        files = [REGISTRY, _test_path(analysis["model_type"])]
        if best is None:
            situation, needs = "S3", True
            notes.append("no registered implementation to compare with (no transformers source for it)")
        else:
            notes.append(f"closest implementation: {best.base_dir} ({best.base_arch})")
            notes += [f"differs: {k}: {b!r} -> {n!r}; evidence: {ev}" for k, (b, n, ev) in best.diffs.items()]
            notes += [f"for the implementer: {o}" for o in best.open]
            situation = "S1" if not best.edits and not best.open else "S2" if not best.open else "S3"
            needs = bool(best.open) or kind == "vlm"
            if best.edits or best.open:
                files += [f"nemo_automodel/components/models/{analysis['model_type']}/{f}"
                          for f in ("__init__.py", "layers.py", "model.py", "state_dict_adapter.py")]
        if kind == "vlm":
            notes.append("VLM: the vision tower, projector and processor need an implementer and image-text tests")
        if analysis["model_type"] not in _transformers_types() and arch:
            notes.append(f"transformers has no config for {analysis['model_type']}: "
                         "_CUSTOM_CONFIG_REGISTRATIONS needs a config class (for the implementer)")
            needs = True
        checklist = [
            "classify the architecture from config.json (dense / MoE / VLM)",
            "alias: register the architecture on the implementation that covers it; else derive the model "
            "directory (model, state-dict adapter, __init__, layers) from the closest implementation",
            "map router, routed experts (in order), gate/up/down and shared experts explicitly",
            "register in MODEL_ARCH_MAPPING; add adapter tests, an example recipe and the coverage page",
            "prove provenance, exact round trip, fp32 logits parity, training steps and the registry tests",
        ]
        return Plan(situation=situation, files=files, checklist=checklist, notes=notes, needs_llm=needs)

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]:
        return candidates(analysis, workspace, _kind(analysis), limit)

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> Applied:
        p = candidate.params
        arch, model_type = p["arch"], analysis["model_type"].replace("-", "_")
        notes: list[str] = []
        files: list[str] = []
        if candidate.id.startswith("alias:"):
            module, cls = p["module"], p["cls"]
            notes.append(f"alias: {arch} runs on {cls} ({candidate.base}); no new model code")
        else:
            names = names_for(candidate.base, p["base_prefix"], model_type, arch)
            derived = derive(workspace, names, [tuple(e) for e in p["edits"]])
            files += write(workspace, derived)
            notes += derived.notes
            module = f"nemo_automodel.components.models.{model_type}.model"
            cls = p["cls"].replace(names.base_prefix, names.new_prefix)
        add_arch(workspace, arch, module, cls)
        files.append(REGISTRY)
        written = self._write_tests(workspace, analysis, module, cls, arch)
        files += written
        if not written:
            notes.append(f"{_test_path(analysis['model_type'])} exists: kept, not regenerated")
        hf_id = extras.model_id(analysis, workspace, arch)
        if hf_id:
            recipe, note = extras.write_recipe(workspace, candidate.base, hf_id)
            notes.append(note)
            files += [recipe] if recipe else []
            page, note = extras.write_docs(workspace, arch, hf_id, recipe, hf_id.split("/", 1)[1])
            notes.append(note)
            files += [page] if page else []
        else:
            notes.append("no checkpoint id in the config or the coverage page: recipe and docs not written")
        return Applied(files=sorted(set(files)), notes=notes)

    def _write_tests(self, workspace: Path, analysis: dict, module: str, cls: str, arch: str) -> list[str]:
        tiny = derive_tiny(analysis.get("raw_text_config") or {})
        experts = next((tiny[k] for k in ("num_experts", "num_local_experts", "n_routed_experts") if tiny.get(k)), 0)
        source = (analysis.get("raw_text_config") or {}).get("_name_or_path") or analysis["model_type"]
        text = (TEMPLATE.read_text(encoding="utf-8").replace("__TINY__", json.dumps(tiny, indent=4, sort_keys=True)
                                                             .replace("true", "True").replace("false", "False")
                                                             .replace("null", "None"))
                .replace("__N_EXPERTS__", str(experts)).replace("__MODULE__", module).replace("__CLS__", cls)
                .replace("__ARCH__", arch).replace("__SOURCE__", str(source)))
        rel = _test_path(analysis["model_type"])
        path = workspace / rel
        if path.exists():  # never replace the repository's own tests
            return []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        init = path.parent / "__init__.py"
        out = [rel]
        if not init.exists():
            init.write_text("", encoding="utf-8")
            out.append(str(init.relative_to(workspace)))
        return out

    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox, run_tests: bool) -> VerifyReport:
        from tools.targets.sandbox_job import run_job

        tiny_dir = ctx.tiny_dir or write_tiny(analysis.get("raw_text_config") or {}, ctx.work_dir / "tiny")
        job_ctx = ctx.model_copy(update={"tiny_dir": tiny_dir, "parity_tolerance": min(ctx.parity_tolerance, TOLERANCE)})
        tests = []
        if run_tests:
            tests = [t for t in (_test_path(analysis["model_type"]), *INVARIANT_TESTS) if (workspace / t).is_file()]
        spec = {"phase": "verify", "arch": candidate.params["arch"], "tests": tests}
        report = run_job(sandbox, JOB, workspace, job_ctx, spec, ctx.timeout_s + (ctx.tests_timeout_s if tests else 0))
        checks = [Check(**{**c, "stage": stage_of(c["name"])}) for c in report["checks"]]
        if run_tests and not tests:
            checks.append(Check(name="tests", status="skipped", stage="tests", detail="workspace has no tests/"))
        parity = next((c for c in checks if c.name == "logits_parity"), None)
        return VerifyReport.from_checks(checks, score=(parity.metrics.get("max_abs_diff") if parity else None),
                                        score_label="max |Δlogits| (fp32)", timings=report.get("timings", {}))

    def pr_meta(self, analysis: dict, candidate: Candidate, workspace: Path,
                report: VerifyReport | None = None) -> PRMeta:
        arch = candidate.params["arch"]
        title = (f"Register {arch} on the {candidate.base} implementation" if candidate.id.startswith("alias:")
                 else f"Add {arch} custom implementation (derived from {candidate.base})")
        tests = " ".join((_test_path(analysis["model_type"]), *INVARIANT_TESTS))
        return PRMeta(title=title, key=analysis["model_type"], display_name=arch,
                      reproduce=[f"pytest --cpu {tests}"])


def _transformers_types() -> set[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return set(CONFIG_MAPPING_NAMES)
