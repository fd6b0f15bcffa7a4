"""One scripted target for graph, service and nightly tests: the contract, with the outcome chosen by the test.

Candidates `alias:a`, `alias:b`, `alias:c` (or `bases`); those in `passing` verify, the others fail the
comparison with score 0.5. `die_on_verify=N` raises `die_with` on the N-th verification (a process dying).
"""

from __future__ import annotations

from pathlib import Path

from sandboxes.envs import SandboxEnv
from tools.targets.base import Applied, BaseTarget, Candidate, Check, Plan, PRMeta, VerifyReport

ENV = SandboxEnv(name="scripted", dir=Path(__file__).resolve().parent)


class ScriptedTarget(BaseTarget):
    key = "scripted"
    default_repo = ""
    pypi_name = "scripted"
    env = ENV
    done_when = "the scripted check passes"

    def __init__(self, passing: set[str] = frozenset({"a", "b", "c", "llama"}), die_on_verify: int | None = None,
                 die_with: type[BaseException] = SystemExit, bases: tuple[str, ...] = ("a", "b", "c"),
                 key: str = "scripted", needs_tiny_model: bool = True):
        super().__init__(Path("/nonexistent"))
        self.passing, self.die_on_verify, self.die_with, self.bases = passing, die_on_verify, die_with, bases
        self.key, self.needs_tiny_model = key, needs_tiny_model
        self.applied: list[str] = []
        self.verified: list[str] = []

    def supported_types(self, ws):
        return {"llama"}

    def plan(self, analysis, ws):
        return Plan(situation="S1", files=["registry.py"])

    def candidates(self, analysis, ws, limit):
        return [Candidate(id=f"alias:{b}", base=b, params={"base_class": b}) for b in self.bases][:limit]

    def apply(self, cand, analysis, ws, ctx):
        self.applied.append(cand.id)
        (ws / "registry.py").write_text(f"REGISTERED = {analysis['model_type']!r}  # via {cand.base}\n")
        return Applied(files=["registry.py"])

    def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
        self.verified.append(cand.id)
        if self.die_on_verify is not None and len(self.verified) == self.die_on_verify:
            raise self.die_with()
        ok = cand.base in self.passing
        score = 1e-7 if ok else 0.5
        checks = [Check(name="scripted_compare", stage="compare", status="passed" if ok else "failed",
                        detail="scripted", metrics={"distance": score})]
        return VerifyReport.from_checks(checks, score=score, score_label="distance")

    def pr_meta(self, analysis, cand, ws, report=None):
        return PRMeta(title=f"Add {analysis['model_type']}", key=analysis["model_type"],
                      display_name=analysis["model_type"].upper(), min_version="5.0.0", min_version_source="scripted")
