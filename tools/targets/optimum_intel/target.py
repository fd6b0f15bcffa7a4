"""optimum-intel: export to OpenVINO IR.

The registry is read from the workspace being patched (never from the
installed package). Candidates pair an existing config class to follow (ranked
by transformers' modular lineage, then by config similarity) with the patch
patterns whose preconditions hold (patterns/); each one is
written into the workspace and must pass export, f32 logits parity, greedy
token equality and the repository's own tests before it can become a PR.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from packaging.version import Version

from tools.hf.release_index import IndexUnavailable, ReleaseIndex
from sandboxes.envs import SandboxEnv
from tools.targets.base import (REPO_ROOT, Applied, BaseTarget, Candidate, Check, JobContext, Plan, PRMeta,
                                 Stage, VerifyReport)

MODEL_CONFIGS = "optimum/exporters/openvino/model_configs.py"
UTILS = "optimum/exporters/openvino/utils.py"
DOCS = "docs/source/openvino/models.mdx"
TESTS_DIR = "tests/openvino"
# The installed optimum-intel registers its CLI command from here too; only the workspace may.
WORKSPACE_ONLY = ("optimum.commands.register",)
NON_DENSE = {"moe", "mla", "ssm", "linear_attention", "vlm"}
ENV = SandboxEnv(name="optimum-intel", dir=REPO_ROOT / "sandboxes" / "targets" / "optimum_intel")
JOB = ENV.job_path
# Which stage each check of the in-sandbox job belongs to (tests:<file> checks are "tests").
COMPARE_CHECKS = {"logits_parity", "expert_coverage", "greedy_tokens", "batch_left_padding", "long_sequence_parity",
                  "cached_decode"}


def stage_of(name: str) -> Stage:
    if name == "tests" or name.startswith("tests:"):
        return "tests"
    return "compare" if name in COMPARE_CHECKS else "build"


def read_registry(workspace: Path) -> dict[str, str]:
    """model_type -> config class name, from `register_in_tasks_manager` decorators."""
    path = workspace / MODEL_CONFIGS
    if not path.exists():
        raise FileNotFoundError(f"{MODEL_CONFIGS} not found in {workspace}: is this optimum-intel?")
    registry: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            if (isinstance(deco, ast.Call) and getattr(deco.func, "id", "") == "register_in_tasks_manager"
                    and deco.args and isinstance(deco.args[0], ast.Constant)):
                registry.setdefault(deco.args[0].value, node.name)
    return registry


def onnx_era_types(workspace: Path) -> set[str]:
    path = workspace / UTILS
    if not path.exists():
        return set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ONNX_SUPPORTED_ARCHITECTURES"
                                                for t in node.targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                return set()
    return set()


def model_display_name(model_type: str) -> str:
    from transformers.models.auto.configuration_auto import MODEL_NAMES_MAPPING

    return MODEL_NAMES_MAPPING.get(model_type, model_type.replace("_", " ").title())


def pytest_keyword(model_type: str) -> str:
    # parameterized turns non-identifier characters into "_" in test names.
    return re.sub(r"\W", "_", model_type)


class OptimumIntelTarget(BaseTarget):
    key = "optimum-intel"
    default_repo = "https://github.com/huggingface/optimum-intel.git"
    pypi_name = "optimum-intel"
    env = ENV
    marker = MODEL_CONFIGS
    needs_tiny_model = True
    done_when = ("the tiny model exports to OpenVINO IR with the patched code, its logits match PyTorch "
                 "within the tolerance with the f32 precision hint, greedy tokens are identical, and the "
                 "repository's own tests of the model pass")

    def __init__(self, cache_dir: Path):
        super().__init__(cache_dir)
        self._versions: dict[str, tuple[str, str]] = {}

    def references(self):
        from tools.targets.optimum_intel.references import OptimumIntelReferences

        return OptimumIntelReferences()

    # -- reading the workspace --------------------------------------------------
    def supported_types(self, workspace: Path) -> set[str]:
        return set(read_registry(workspace))

    def min_transformers_version(self, model_type: str) -> tuple[str, str]:
        """(version, how it was found); asked of the package index once per process."""
        if model_type not in self._versions:
            self._versions[model_type] = self._lookup_version(model_type)
        return self._versions[model_type]

    def written_min_version(self, workspace: Path, model_type: str) -> str | None:
        """MIN_TRANSFORMERS_VERSION of the class the patch registered: a pattern may have raised it
        above the first release that ships the model, and the PR must state what the code says."""
        from tools.targets.optimum_intel.patch import _registrations
        from tools.targets.optimum_intel.patterns.edit import resolved_attrs

        try:
            tree = ast.parse((workspace / MODEL_CONFIGS).read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return None
        for cls, regs in _registrations(tree).items():
            if any(mt == model_type for mt, _ in regs):
                expr = resolved_attrs(workspace, cls, ("MIN_TRANSFORMERS_VERSION",)).get("MIN_TRANSFORMERS_VERSION")
                if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                    return expr.value
        return None

    def _lookup_version(self, model_type: str) -> tuple[str, str]:
        import transformers
        from transformers.models.auto.configuration_auto import model_type_to_module_name

        try:
            # the wheel's directory is the module name: bert-generation lives in models/bert_generation
            found = ReleaseIndex(self.cache_dir).first_release_with(model_type_to_module_name(model_type))
            if found:
                return found, "first transformers release on the package index that ships the model"
        except (IndexUnavailable, OSError, ValueError) as exc:
            reason = f"package index unavailable ({str(exc)[:120]})"
        else:
            reason = "model directory not found in any release on the package index"
        return transformers.__version__, f"installed transformers version: {reason}"

    def plan(self, analysis: dict, workspace: Path) -> Plan:
        registry = read_registry(workspace)
        features = set(analysis.get("features", []))
        lineage = [f for f in analysis.get("lineage", []) if f in registry]
        dense = not (features & NON_DENSE)
        if dense and lineage:
            situation = "S1"
        elif lineage or dense:
            situation = "S2"
        else:
            situation = "S3"
        files = [MODEL_CONFIGS]
        if analysis["model_type"] in onnx_era_types(workspace):
            files.append(UTILS)
        for rel in (DOCS, f"{TESTS_DIR}/utils_tests.py", f"{TESTS_DIR}/test_decoder.py",
                    f"{TESTS_DIR}/test_export.py", f"{TESTS_DIR}/test_exporters_cli.py"):
            if (workspace / rel).exists():
                files.append(rel)
        notes = [] if (workspace / TESTS_DIR).exists() else [
            "workspace has no tests/ (source distribution): test registrations are skipped"]
        checklist = [
            "register an OpenVINO export config for the new model_type, following the closest family",
            "set MIN_TRANSFORMERS_VERSION to the first transformers release with the model",
            "take the type off ONNX_SUPPORTED_ARCHITECTURES if it is listed there",
            "document it in models.mdx and register it in the decoder tests under a Hub id, with the tiny "
            "config the shared fallback builds it from",
            "prove export, f32 logits parity, greedy token equality and the targeted tests",
        ]
        return Plan(situation=situation, files=files, checklist=checklist, notes=notes,
                    needs_llm=situation != "S1")

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]:
        from tools.targets.optimum_intel.search import search

        return search(analysis, workspace, read_registry(workspace), limit)

    # -- writing ------------------------------------------------------------------
    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> Applied:
        return self._write(candidate, analysis, workspace, ctx, None)

    def _write(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               facts: dict | None) -> Applied:
        """`facts`: what verification measured (SDPA and int8 counts, whether transformers' cached generation
        departs from the model), for the test tables."""
        from tools.targets.optimum_intel.patch import PatchSpec, write_patch
        from tools.targets.optimum_intel.patterns.base import PatternContext, combined_edit

        version, _ = self.min_transformers_version(analysis["model_type"])
        edit = combined_edit(PatternContext(analysis, workspace, candidate.params["base_class"]),
                             candidate.patterns)
        pattern_notes = [edit.note] if edit.note else []
        if edit.min_transformers and Version(edit.min_transformers) > Version(version):
            pattern_notes.append(f"MIN_TRANSFORMERS_VERSION raised from {version} to {edit.min_transformers}: "
                                 "the applied patterns need it")
            version = edit.min_transformers
        spec = PatchSpec(
            model_type=analysis["model_type"],
            base_class=candidate.params["base_class"],
            min_transformers_version=version,
            display_name=model_display_name(analysis["model_type"]),
            tiny_config=tiny_fixture_config(ctx.tiny_dir),
            expected_sdpa=(facts or {}).get("sdpa_ops"),
            expected_int8=(facts or {}).get("int8_weights"), measured=facts is not None,
            expected_tokenizers=(facts or {}).get("tokenizer_models"),
            compare_uncached=bool((facts or {}).get("compare_uncached")),
            eager_reference=bool((facts or {}).get("eager_reference")),
            class_attrs=edit.class_attrs, imports=edit.imports, patchers=edit.patchers, joins=edit.joins,
            also_registers=edit.also_registers, tasks=edit.tasks, module_blocks=edit.module_blocks,
            code_blocks=edit.code_blocks, methods=edit.methods, no_conv_state=edit.no_conv_state,
        )
        result = write_patch(workspace, spec)
        _commit_shared(workspace)
        return Applied(files=result.files,
                       notes=pattern_notes + result.notes + [f"skipped: {s}" for s in result.skipped])

    def pr_meta(self, analysis: dict, candidate: Candidate, workspace: Path,
                report: VerifyReport | None = None) -> PRMeta:
        model_type = analysis["model_type"]
        version, source = self.min_transformers_version(model_type)
        written = self.written_min_version(workspace, model_type)
        if written and written != version:
            source = f"raised by the applied patterns (first release that ships the model: {version})"
            version = written
        display = model_display_name(model_type)
        return PRMeta(title=f"[OpenVINO] Add support for {display}", key=model_type, display_name=display,
                      min_version=version, min_version_source=source,
                      reproduce=_reproduce(model_type, workspace, report),
                      facts=_test_model_facts(model_type, workspace))

    # -- replaying history (`onboard bench history`) ---------------------------------
    def history_cases(self, mirror: Path, cache_dir: Path):
        from tools.targets.optimum_intel.history import history_cases

        return history_cases(mirror, self.references(), cache_dir)

    def history_base_problem(self, workspace: Path, sandbox, work_dir: Path) -> str | None:
        from tools.targets.optimum_intel.history import base_problem

        return base_problem(workspace, sandbox, work_dir, WORKSPACE_ONLY)

    def history_strip(self, workspace: Path, case, mirror: Path) -> str | None:
        from tools.targets.optimum_intel.history import strip

        return strip(workspace, case, mirror)

    def compare_history(self, case, ours: Path, upstream: Path, our_diff: str, upstream_diff: str,
                        ctx: JobContext, sandbox):
        from tools.targets.optimum_intel.history import compare
        from tools.targets.sandbox_job import run_job

        def run_tests(files: list[str]) -> list[Check]:
            report = run_job(sandbox, JOB, ours, ctx, {"phase": "tests", "tests": files}, ctx.tests_timeout_s,
                             workspace_only=WORKSPACE_ONLY)
            return [_check(c) for c in report["checks"]]

        return compare(case, ours, upstream, our_diff, upstream_diff, ctx, run_tests)

    # -- verification -------------------------------------------------------------
    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox, run_tests: bool) -> VerifyReport:
        from tools.targets.optimum_intel.patterns.no_cache import export_task
        from tools.targets.sandbox_job import run_job

        # With tests to register, the int8 export is measured too: test_exporters_cli needs its count.
        parity = run_job(sandbox, JOB, workspace, ctx,
                         {"phase": "parity", "measure_int8": run_tests and (workspace / TESTS_DIR).exists(),
                          "task": export_task(workspace, ctx.model_type),
                          "precision_matrix": ctx.precision_matrix, "devices": ctx.devices},
                         ctx.timeout_s,
                         workspace_only=WORKSPACE_ONLY)
        checks = [_check(c) for c in parity["checks"]]
        precision_checks = self._judge_precision(parity, analysis, ctx)
        timings = dict(parity.get("timings", {}))
        failed = [c for c in checks if c.status == "failed"]
        if not failed and run_tests and (workspace / TESTS_DIR).exists():
            sdpa = next((c.metrics.get("sdpa_ops") for c in checks if c.name == "export"), None)
            int8 = next((c.metrics for c in checks if c.name == "int8_weights"), {})
            probe = next((c.metrics.get("torch_cache") for c in checks if c.name == "batch_left_padding"), None)
            attention = next((c.metrics.get("torch_attention") for c in checks if c.name == "batch_left_padding"),
                             None)
            files = self._write(candidate, analysis, workspace, ctx,
                                facts={"sdpa_ops": sdpa, "int8_weights": int8.get("per_model"),
                                       "tokenizer_models": int8.get("tokenizer_models"),
                                       "compare_uncached": (probe or {}).get("compare_uncached"),
                                       "eager_reference": (attention or {}).get("default_noncausal")}).files
            selections = [f for f in sorted(set(files)) if f.startswith(f"{TESTS_DIR}/test_")]
            if not selections:
                checks.append(Check(name="tests", status="failed", stage="tests",
                                    detail="the patch registered the model in no test file"))
            else:
                tests = run_job(sandbox, JOB, workspace, ctx, {"phase": "tests", "tests": selections},
                                ctx.tests_timeout_s, workspace_only=WORKSPACE_ONLY)
                checks += [_check(c) for c in tests["checks"]]
                timings.update(tests.get("timings", {}))
        elif not (workspace / TESTS_DIR).exists():
            checks.append(Check(name="tests", status="skipped", stage="tests",
                                detail="workspace has no tests/ (source distribution)"))
        checks += precision_checks  # after the tests: a precision below its bar must not hide their result
        parity_check = next((c for c in checks if c.name == "logits_parity"), None)
        metrics = parity_check.metrics if parity_check else {}
        return VerifyReport.from_checks(checks, score=metrics.get("max_abs_diff"), score_label="max |Δlogits|",
                                        divergence=metrics.get("first_divergence") or {}, timings=timings)

    @staticmethod
    def _judge_precision(parity: dict, analysis: dict, ctx: JobContext) -> list[Check]:
        from tools.targets.optimum_intel.precision import DEFAULT_TOLERANCES, Tolerance, judge

        if not ctx.precision_matrix or "precision" not in parity:
            return []
        tolerances = dict(DEFAULT_TOLERANCES)
        for precision, bars in ctx.precision_tolerances.items():  # a setting may name only some bars
            tolerances[precision] = Tolerance(**{**tolerances[precision].model_dump(), **bars})
        return judge(parity["precision"], tolerances, analysis.get("lineage", []))


def _commit_shared(workspace: Path) -> None:
    """The tiny-model builder and its hook, when this patch wrote them, become the shared commit under
    the model's change (tools/repo/shared_commit.py): the same commit in every PR on this revision."""
    from tools.repo.shared_commit import commit_under_head, tracked
    from tools.targets.optimum_intel import fixture

    if not (workspace / ".git").exists() or not (workspace / fixture.HELPER).exists() \
            or tracked(workspace, fixture.HELPER):
        return
    from tools.repo.git_safe import open_worktree

    base = open_worktree(workspace).git.show(f"HEAD:{fixture.UTILS_TESTS}", strip_newline_in_stdout=False)
    hooked = fixture.insert_hook(base).text
    commit_under_head(workspace, {fixture.HELPER: fixture.HELPER_SOURCE, fixture.UTILS_TESTS: hooked},
                      fixture.SHARED_MESSAGE, fixture.SHARED_DATE)


def _check(data: dict) -> Check:
    return Check(**{**data, "stage": stage_of(data["name"])})


def _test_model_facts(model_type: str, workspace: Path) -> dict[str, str]:
    """The PR intro's "Tiny test model" section: Hub id, config file, builder, shared commit."""
    from tools.repo.shared_commit import shared_under_head
    from tools.targets.optimum_intel import fixture

    path = workspace / fixture.config_path(model_type)
    if not path.exists():
        return {}
    entry = json.loads(path.read_text(encoding="utf-8"))
    shared = shared_under_head(workspace) if (workspace / ".git").exists() else None
    return {"hub_id": entry["hub_id"], "seed": str(entry.get("seed", "")), "helper": fixture.HELPER,
            "config_file": fixture.config_path(model_type), "shared_commit": shared or ""}


def _reproduce(model_type: str, workspace: Path, report: VerifyReport | None) -> list[str]:
    """Commands a reviewer runs from the root of a clone of the PR branch."""
    from tools.targets.optimum_intel import fixture
    from tools.targets.optimum_intel.patterns.no_cache import export_task

    tests = _test_commands(report.checks if report else [])
    if not (workspace / fixture.config_path(model_type)).exists():
        return tests
    hub = json.loads((workspace / fixture.config_path(model_type)).read_text())["hub_id"]
    name = hub.split("/")[-1]
    return [f"# the tiny test model, from {fixture.config_path(model_type)} (--push uploads it as {hub})",
            f"python {fixture.HELPER} {model_type} --output {name}",
            f"optimum-cli export openvino --model {name} --task {export_task(workspace, model_type)} {name}-ov",
            "# the repository's tests of the model (offline, the test fixture builds the same tiny model)",
            *tests]


def _test_commands(checks: list[Check]) -> list[str]:
    """One pytest command per test file, naming exactly the tests that passed."""
    out = []
    for c in checks:
        if c.name.startswith("tests:"):
            ids = c.metrics.get("passed_ids") or []
            out.append("pytest " + (" ".join(f'"{i}"' for i in ids) if ids else c.name.split(":", 1)[1]))
    return out


def tiny_fixture_config(tiny_dir: Path) -> dict:
    """The tiny config as the fixture should write it: only what differs from defaults."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(tiny_dir)
    except (ValueError, KeyError):
        # A text sub-config saved on its own (emu3_text_model, mllama_text_model) has no Auto
        # mapping: its saved file already holds every value the fixture needs.
        data = json.loads((Path(tiny_dir) / "config.json").read_text())
    else:
        data = config.to_diff_dict()
        data["model_type"] = config.model_type
    for key in ("transformers_version", "_name_or_path", "dtype", "torch_dtype"):
        data.pop(key, None)
    return json.loads(json.dumps(data))
