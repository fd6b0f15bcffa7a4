"""End to end on real optimum-intel: olmoe, whose registration alone does not export, fixed by a
scripted vectorised-experts patch.

Everything is real except the model's replies: the workspace (optimum-intel's
git history or its source distribution), the tiny olmoe, the sandboxed export
and parity, the tools, the trajectory and the PR record. The scripted model
reads what it needs from its own tool observations, as a model would: the
name of the registered class comes from its grep, not from the test.
The target's own candidates are reduced to bare registrations (no patterns): the
deterministic pattern search may well solve olmoe by itself, and this test is
about what happens when registration alone is not enough. With the pinned
stack a bare registration after llama or mixtral leaves OlmoeExperts' routed
loop in place, which OpenVINO cannot convert.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, Fail, Say, call

pytestmark = pytest.mark.integration

CONFIGS = "optimum/exporters/openvino/model_configs.py"
PATCHER = "optimum/exporters/openvino/model_patcher.py"
NEW_PATCHER = '''class OlmoeModelPatcher(OVDecoderModelPatcher):
    # OlmoeExperts loops over the experts that received tokens, which does not convert; the batched
    # form used for LFM2-MoE computes every expert and weights them with a dense routing matrix.
    def __enter__(self):
        super().__enter__()
        from transformers.models.olmoe.modeling_olmoe import OlmoeExperts

        self._original_experts_forward = OlmoeExperts.forward
        OlmoeExperts.forward = lfm2_moe_experts_forward

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        from transformers.models.olmoe.modeling_olmoe import OlmoeExperts

        OlmoeExperts.forward = self._original_experts_forward


'''


def _observations(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m.get("role") == "tool"]


def olmoe_model(body: dict, n: int):
    """The next reply, from the conversation so far (so it survives a resume)."""
    step = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    est = dict(prompt_tokens=None, completion_tokens=None)
    if step == 0:
        return Say(calls=[call("grep", pattern=r"^class OlmoeOpenVINOConfig\(", path=CONFIGS)], **est)
    if step == 1:
        return Say(calls=[call("grep", pattern=r"^def lfm2_moe_experts_forward|^class Qwen2MoEPatcher\(",
                               path=PATCHER)], **est)
    if step == 2:
        anchor = "class Qwen2MoEPatcher(OVDecoderModelPatcher):\n"
        return Say(calls=[call("str_replace", path=PATCHER, old_str=anchor, new_str=NEW_PATCHER + anchor),
                          call("str_replace", path=CONFIGS, old_str="    Qwen2MoEPatcher,\n",
                               new_str="    OlmoeModelPatcher,\n    Qwen2MoEPatcher,\n")], **est)
    if step == 3:
        found = re.search(r"(class OlmoeOpenVINOConfig\(\w+\):)", _observations(body)[0])
        line = found.group(1) + "\n"
        return Say(calls=[call("str_replace", path=CONFIGS, old_str=line,
                               new_str=line + "    _MODEL_PATCHER = OlmoeModelPatcher\n")], **est)
    if step == 4:
        return Say(calls=[call("run_verification")], **est)
    if step == 5:
        passed = _observations(body)[-1].startswith("verification PASSED")
        return Say(calls=[call("finish", summary="Registered olmoe with a patcher that swaps OlmoeExperts' "
                                                  "routed loop for the batched-matmul experts forward.")]
                   if passed else [call("list_dir")], **est)
    return Fail(500, message=f"no scripted step {step}")


def test_olmoe_registration_fails_and_the_scripted_patch_is_verified_and_published(tmp_path, monkeypatch):
    from agent.graph.request import Request, prepare
    from agent.graph.run import drive, make_deps
    from agent.settings import Settings

    from tools.targets.optimum_intel.target import OptimumIntelTarget

    found = OptimumIntelTarget.candidates

    def registrations_only(self, analysis, workspace, limit):
        seen, out = set(), []
        for c in found(self, analysis, workspace, 4 * limit):
            if c.base not in seen:
                seen.add(c.base)
                out.append(c.model_copy(update={"id": f"alias:{c.base}", "patterns": [], "why": "registration"}))
        return out[:limit]

    monkeypatch.setattr(OptimumIntelTarget, "candidates", registrations_only)
    cache = Path.home() / ".cache" / "onboarder" / "test-cache"
    settings = Settings(data_dir=tmp_path / "data", cache_dir=cache, sandbox="local", max_candidates=2)
    with FakeOpenAI(olmoe_model) as server:
        monkeypatch.setenv("ONBOARD_LLM_BASE_URL", server.url)
        monkeypatch.setenv("ONBOARD_LLM_MODEL", "scripted-olmoe")
        job = prepare(Request(model="olmoe", target="optimum-intel"), settings)
        deps = make_deps(settings, job.target, lambda m: None)
        state, _ = drive(settings, deps, job.thread_id, job.initial_state)
    deterministic = [a for a in state["attempts"] if a["candidate"].startswith("alias:")]
    assert deterministic and not any(a["passed"] for a in deterministic)
    assert state["outcome"] == "pr", state.get("message")
    assert state["attempts"][-1]["candidate"].startswith("llm:") and state["attempts"][-1]["passed"]
    diff = Path(state["pr"]["diff_path"]).read_text()
    assert "OlmoeExperts.forward = lfm2_moe_experts_forward" in diff and "_MODEL_PATCHER = OlmoeModelPatcher" in diff
    traj = json.loads((Path(job.job_dir) / "trajectory.json").read_text())
    assert traj["exit_status"] == "submitted"
    usage = traj["usage"]
    print(f"\n[olmoe scripted scenario] steps={usage['steps']} tokens={usage['total_tokens']} "
          f"(prompt {usage['prompt_tokens']}, completion {usage['completion_tokens']})")
    assert usage["total_tokens"] < 150_000
