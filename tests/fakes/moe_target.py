"""A miniature target whose verification really traces a MoE forward, for the LLM scenarios.

The workspace holds `registry.py` (the registration a deterministic candidate
writes) and `moe.py`, a routed-experts forward written the way many
transformers models write it: a Python loop over experts with an
`if mask.any()` branch. Verification traces `moe_forward` with an input that
leaves some experts idle and runs the traced graph on one that uses them all,
as an exporter would, and compares it with the original loop run eagerly (the
PyTorch reference, which the workspace cannot change): the loop version bakes
the idle branch away and disagrees; a correct vectorised rewrite agrees.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from sandboxes.envs import SandboxEnv
from tests.fakes.scripted_target import ScriptedTarget
from tools.targets.base import BaseTarget, Candidate, Check, Plan, PRMeta, VerifyReport

MOE_LOOP_HEAD = '''import torch


def moe_forward(hidden, router_logits, expert_weights, top_k: int = 1):
    probs = router_logits.softmax(-1)
    weights, selected = torch.topk(probs, top_k)
'''

LOOP_BODY = '''    out = torch.zeros_like(hidden)
    for e in range(expert_weights.shape[0]):
        hit = selected == e
        if hit.any():
            rows = hit.any(-1)
            scale = (weights * hit).sum(-1, keepdim=True)[rows]
            out[rows] += scale * (hidden[rows] @ expert_weights[e])
    return out
'''

MOE_LOOP = MOE_LOOP_HEAD + LOOP_BODY

VECTORISED_BODY = '''    # every expert runs on every token; the routing matrix zeroes what was not selected
    routing = torch.zeros_like(probs).scatter(1, selected, weights)
    per_expert = torch.einsum("nh,ehd->end", hidden, expert_weights)
    return torch.einsum("ne,end->nd", routing, per_expert)
'''


def _inputs():
    import torch

    g = torch.Generator().manual_seed(0)
    n, e, h = 6, 4, 8
    hidden = torch.randn(n, h, generator=g)
    w = torch.randn(e, h, h, generator=g)
    idle = torch.full((n, e), -10.0)
    idle[:, 0] = torch.linspace(1, 2, n)  # only experts 0 and 1 are routed to
    idle[::2, 1] = 5.0
    busy = torch.randn(n, e, generator=g)
    busy[torch.arange(n), torch.arange(n) % e] = 10.0  # every expert gets tokens
    return (hidden, idle, w), (hidden, busy, w)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_forward():
    namespace: dict = {}
    exec(compile(MOE_LOOP, "reference_moe.py", "exec"), namespace)
    return namespace["moe_forward"]


def trace_parity(workspace: Path) -> tuple[float, str]:
    import torch

    module = _load(f"moe_{abs(hash(str(workspace)))}", workspace / "moe.py")
    example, other = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.moe_forward, example, check_trace=False)
    with torch.no_grad():
        diff = float((traced(*other) - reference_forward()(*other)).abs().max())
    return diff, "traced on an input with idle experts, run on one that uses them all"


class MoeTarget(BaseTarget):
    key = "moe-mini"
    default_repo = ""
    pypi_name = "moe-mini"
    env = SandboxEnv(name="moe-mini", dir=Path(__file__).resolve().parent)
    done_when = "the tiny MoE traces and its logits match eager PyTorch"

    def __init__(self, situation: str = "S2"):
        super().__init__(Path("/nonexistent"))
        self.situation = situation
        self.applied: list[str] = []
        self.verified: list[str] = []

    def supported_types(self, ws):
        return {"llama"}

    def plan(self, analysis, ws):
        return Plan(situation=self.situation, files=["registry.py", "moe.py"],
                    checklist=["register the model", "make the experts traceable"], needs_llm=True)

    def candidates(self, analysis, ws, limit):
        return [Candidate(id="alias:llama", base="llama", params={"base_class": "Llama"})][:limit]

    apply = ScriptedTarget.apply  # the same one-line registration

    def verify(self, cand, analysis, ws, ctx, sandbox, run_tests):
        self.verified.append(cand.id)
        checks = []
        registered = analysis["model_type"] in (ws / "registry.py").read_text()
        checks.append(Check(name="registered", status="passed" if registered else "failed",
                            detail="registry.py" if registered else "the model is not in registry.py"))
        try:
            diff, how = trace_parity(ws)
        except Exception as exc:
            checks.append(Check(name="export", status="failed", detail=f"{type(exc).__name__}: {exc}"))
            diff = None
        else:
            checks.append(Check(name="export", status="passed", detail="traced"))
            checks.append(Check(name="logits_parity", stage="compare", status="passed" if diff <= 1e-5 else "failed",
                                detail=f"max |Δlogits| {diff:.3g} ({how})", metrics={"max_abs_diff": diff}))
        return VerifyReport.from_checks(checks, score=diff, score_label="max |Δlogits|")

    def pr_meta(self, analysis, cand, ws, report=None):
        return PRMeta(title=f"Add {analysis['model_type']}", key=analysis["model_type"],
                      display_name=analysis["model_type"].title(), min_version="5.0.0", min_version_source="scripted")
