"""The Target contract, whole: what the graph, nightly and the faces may ask of one framework.

A target reads its own registry from the workspace (the code being patched,
never an installed package), proposes candidate changes in the order it
believes in, writes one candidate into the workspace, verifies it in a sandbox
of its own environment, and describes the pull request. The graph only
sequences these calls; it never reads a check by name, so nothing outside a
target's package speaks that target's vocabulary (exports, logits, kernels).

A new target subclasses `BaseTarget`, sets the class attributes, implements the
six required methods, and adds one line to `tools.targets.REGISTRY`. Its files:
`tools/targets/<pkg>/`, `sandboxes/targets/<pkg>/` (verify.py, Dockerfile,
requirements.lock), `prompts/targets/<pkg>/` (playbook.md.j2, pr_intro.md.j2)
and `tests/targets/<pkg>/`, where <pkg> is the key with "-" as "_".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from sandboxes.envs import SandboxEnv

if TYPE_CHECKING:
    from tools.repo.references import ReferenceProfile

Situation = Literal["S1", "S2", "S3"]  # same ops as a family / a family plus new fields / no family fits
CheckStatus = Literal["passed", "failed", "skipped"]
# Where a candidate stopped: it could not be built (export, registration, build), it was built but
# disagrees with the reference, or it agrees and the repository's own tests refuse it.
# build: the change does not build or export; compare: its artifact differs from the reference; precision: the
# artifact matched the reference at full precision but not as users deploy it (reduced precision); tests: the
# repository's own tests refused it.
Stage = Literal["build", "compare", "precision", "tests"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def package_of(key: str) -> str:
    """The folder name of a target everywhere in the tree: the key with "-" as "_"."""
    return key.replace("-", "_")


class Plan(BaseModel):
    situation: Situation
    files: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # The target knows registration alone cannot finish the job (e.g. a new family): when no
    # candidate passes, the run says an implementer (the LLM) is needed, not just "refused".
    needs_llm: bool = False


class Candidate(BaseModel):
    """One concrete way to onboard: a base to follow plus named patterns."""

    id: str
    base: str
    patterns: list[str] = Field(default_factory=list)
    why: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class Check(BaseModel):
    name: str
    status: CheckStatus
    stage: Stage = "build"
    detail: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)


class VerifyReport(BaseModel):
    passed: bool
    checks: list[Check] = Field(default_factory=list)
    first_failure: str = ""
    failed_stage: Stage | None = None
    # Target-neutral distance to the reference, lower is better (optimum-intel: max |Δlogits|);
    # None when the candidate never got as far as a comparison. Ranks candidates everywhere.
    score: float | None = None
    score_label: str = ""  # how reports phrase the score, e.g. "max |Δlogits|"
    divergence: dict[str, Any] = Field(default_factory=dict)  # where the comparison first diverged
    timings: dict[str, float] = Field(default_factory=dict)
    raw_path: str | None = None  # full JSON report on disk

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @classmethod
    def from_checks(cls, checks: list[Check], *, score: float | None = None, score_label: str = "",
                    divergence: dict | None = None, timings: dict | None = None) -> "VerifyReport":
        """Passed = nothing failed and something passed: a report of skips alone proves nothing."""
        failed = [c for c in checks if c.status == "failed"]
        ran = any(c.status == "passed" for c in checks)
        if failed:
            first, stage = f"{failed[0].name}: {failed[0].detail}", failed[0].stage
        elif not ran:
            first, stage = "no check ran", "build"
        else:
            first, stage = "", None
        return cls(passed=not failed and ran, checks=checks, first_failure=first, failed_stage=stage,
                   score=score, score_label=score_label, divergence=divergence or {}, timings=timings or {})


class Applied(BaseModel):
    files: list[str] = Field(default_factory=list)  # workspace-relative paths written
    notes: list[str] = Field(default_factory=list)  # what a reviewer should know (skips, raised bounds)


class PRMeta(BaseModel):
    title: str
    key: str  # names the branch and the record: the model type, or finer (one per checkpoint)
    display_name: str
    min_version: str = ""  # of transformers, where the target declares one
    min_version_source: str = ""
    # Commands a reviewer runs from a clone of the PR branch (never a host path).
    reproduce: list[str] = Field(default_factory=list)
    # What a target's own PR intro template shows besides the common fields (e.g. its test model).
    facts: dict[str, str] = Field(default_factory=dict)


class HistoryCase(BaseModel):
    """One upstream commit that onboarded a model, as `onboard bench history` replays it."""

    model: str  # what the onboarding is given: a model type, or a config file the target extracted
    model_type: str
    sha: str
    subject: str
    pr: int | None = None
    timestamp: int = 0
    also_added: list[str] = Field(default_factory=list)  # other types the same commit registered
    facts: dict[str, Any] = Field(default_factory=dict)  # what the target reads back when comparing


class PassedOver(BaseModel):
    """An addition the bench does not replay, and why (out of the onboarding's scope, a bulk move)."""

    sha: str
    subject: str
    model_types: list[str]
    reason: str


AgreementPoint = Literal["family", "tasks", "files", "upstream_tests"]


class Agreement(BaseModel):
    point: AgreementPoint
    agree: bool | None  # None: could not be judged (said in `how`)
    ours: str = ""
    upstream: str = ""
    how: str = ""  # where our change differs from upstream's, in a few words


class HistoryUnsupported(Exception):
    """The target cannot replay its history (yet); the message says why."""


class JobContext(BaseModel):
    """What a target's apply/verify calls need besides the workspace."""

    model_config = {"arbitrary_types_allowed": True}

    model_type: str
    tiny_dir: Path | None = None  # only for targets with needs_tiny_model
    work_dir: Path  # per-attempt scratch directory (reports, artifacts, logs)
    parity_tolerance: float = 1e-4
    timeout_s: float = 900.0
    tests_timeout_s: float = 1200.0
    # Hardware the verification may use (None: whatever the runtime reports) and, for targets that measure
    # deployment precisions, whether to and with which tolerances (precision -> bars; target-defined).
    devices: list[str] | None = None
    precision_matrix: bool = False
    precision_tolerances: dict[str, dict[str, float]] = Field(default_factory=dict)
    cpu_weight: float = 1.0  # the sandbox's share of contended CPU (sandboxes.base.Limits)


@runtime_checkable
class Target(Protocol):
    key: str
    default_repo: str
    pypi_name: str | None  # source distribution used when the repository is unreachable
    env: SandboxEnv
    needs_tiny_model: bool
    done_when: str  # one sentence: what "verified" means here (LLM prompts, run_verification)
    marker: str | None  # a file every checkout of the target has

    def supported_types(self, workspace: Path) -> set[str]: ...

    def plan(self, analysis: dict, workspace: Path) -> Plan: ...

    def candidates(self, analysis: dict, workspace: Path, limit: int) -> list[Candidate]: ...

    def apply(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext) -> Applied: ...

    def verify(self, candidate: Candidate, analysis: dict, workspace: Path, ctx: JobContext,
               sandbox: Any, run_tests: bool) -> VerifyReport: ...

    def pr_meta(self, analysis: dict, candidate: Candidate, workspace: Path) -> PRMeta: ...

    def references(self) -> "ReferenceProfile | None": ...

    def gap(self, workspace: Path, mappings: dict[str, dict]) -> list[str]: ...

    def history_cases(self, mirror: Path, cache_dir: Path) -> tuple[list[HistoryCase], list[PassedOver]]: ...

    def history_base_problem(self, workspace: Path, sandbox: Any, work_dir: Path) -> str | None: ...

    def history_strip(self, workspace: Path, case: HistoryCase, mirror: Path) -> str | None: ...

    def compare_history(self, case: HistoryCase, ours: Path, upstream: Path, our_diff: str, upstream_diff: str,
                        ctx: JobContext, sandbox: Any) -> list[Agreement]: ...

    def describe(self) -> dict: ...


class BaseTarget:
    """Defaults for the optional seams; subclasses set the class attributes and the required methods."""

    key: str = ""
    default_repo: str = ""
    pypi_name: str | None = None
    needs_tiny_model: bool = True
    done_when: str = ""
    # A file every checkout of the target has: a --repo without it is some other project.
    marker: str | None = None
    env: SandboxEnv

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir

    def references(self) -> "ReferenceProfile | None":
        """How to read earlier onboardings from the target's history; None: no reference study."""
        return None

    def gap(self, workspace: Path, mappings: dict[str, dict]) -> list[str]:
        """Model types to try in a sweep: those with a causal-LM class that the workspace lacks."""
        supported = self.supported_types(workspace)
        return sorted(t for t in mappings.get("text-generation", {}) if t not in supported)

    # -- `onboard bench history`: replaying the target's own onboarding commits -------------------
    history_unsupported: str = "this target does not say how its onboarding commits read"

    def history_cases(self, mirror: Path, cache_dir: Path) -> tuple[list[HistoryCase], list[PassedOver]]:
        """Commits that onboarded a model the onboarding could take, newest first, and those passed over."""
        raise HistoryUnsupported(f"{self.key}: bench history is not supported: {self.history_unsupported}")

    def history_base_problem(self, workspace: Path, sandbox: Any, work_dir: Path) -> str | None:
        """Why a past revision cannot be onboarded in today's environment (None: it can)."""
        return None

    def history_strip(self, workspace: Path, case: HistoryCase, mirror: Path) -> str | None:
        """Take the case's model out of a HEAD checkout (its registrations, test entries, docs), for a
        commit whose parent no longer works; returns what was done, or None when the target cannot
        (the commit is then reverted whole, which later changes often prevent)."""
        return None

    def compare_history(self, case: HistoryCase, ours: Path, upstream: Path, our_diff: str, upstream_diff: str,
                        ctx: JobContext, sandbox: Any) -> list[Agreement]:
        """Our change (applied in `ours`) against upstream's (`upstream`: the tree after it), point by point.

        `ours` is a scratch copy: a comparison may add upstream's test files to it and run them."""
        raise HistoryUnsupported(f"{self.key}: bench history is not supported: {self.history_unsupported}")

    def describe(self) -> dict:
        """What ran, for report.json: enough to tell two configurations apart."""
        return {"key": self.key, "default_repo": self.default_repo, "pypi_name": self.pypi_name,
                "needs_tiny_model": self.needs_tiny_model, "env": self.env.describe()}

    def supported_types(self, workspace: Path) -> set[str]:
        raise NotImplementedError
