"""The MoE patterns for known expert shapes: GraniteMoe-shaped gating/experts (moe_granite_gating) and
grouped-GEMM experts (moe_grouped_gemm_batched), on the miniature optimum-intel workspace."""

from __future__ import annotations

import ast
import shutil
import textwrap
import types
from pathlib import Path

import pytest
from transformers import AutoConfig

from tests import TESTS
from tools.hf.config import analyze
from tools.targets.optimum_intel.patch import PatchSpec, write_patch
from tools.targets.optimum_intel.patterns.base import PatternContext
from tools.targets.optimum_intel.patterns.moe import _modeling
from tools.targets.optimum_intel.patterns.moe_granite import (GRANITE_EXPERTS, HELPERS, granite_shaped,
                                                              patcher_source, shaped_in)
from tools.targets.optimum_intel.patterns.moe_grouped import (GROUPED_GEMM, forward_name, forward_source,
                                                              grouped_experts, grouped_in, transposed_gemm)

FIXTURES = TESTS / "fixtures" / "optimum_intel"
CONFIGS = "optimum/exporters/openvino/model_configs.py"
PATCHER = "optimum/exporters/openvino/model_patcher.py"
# what optimum-intel 2.x defines for GraniteMoe (stubs: the fixture is only parsed)
GRANITE_HELPERS = "".join(f"\n\ndef {h}(self, *args):\n    \"\"\"Upstream: GraniteMoe's traceable forward.\"\"\"\n"
                          for h in HELPERS)


@pytest.fixture
def ws(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "ws", ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    return tmp_path / "ws"


def with_granite_helpers(ws: Path) -> Path:
    patcher = ws / PATCHER
    patcher.write_text(patcher.read_text() + GRANITE_HELPERS)
    return ws


def ctx(ws: Path, base: str, model_type: str) -> PatternContext:
    raw = AutoConfig.for_model(model_type).to_dict()
    analysis = analyze(raw).model_dump(mode="json")
    analysis["raw_text_config"] = raw
    return PatternContext(analysis, ws, base)


def write(ws: Path, c: PatternContext, pattern):
    edit = pattern.edit(c)
    spec = PatchSpec(model_type=c.model_type, base_class=c.base_class, min_transformers_version="5.0.0",
                     display_name=c.model_type, tiny_config={}, expected_sdpa=None, class_attrs=edit.class_attrs,
                     imports=edit.imports, patchers=edit.patchers)
    return edit, write_patch(ws, spec)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_additive(before: dict[str, str], after: dict[str, str]) -> None:
    for rel, text in after.items():
        if rel.endswith(".py"):
            ast.parse(text)
    for rel in before:
        assert not set(before[rel].splitlines()) - set(after[rel].splitlines()), rel


def top_level(text: str) -> list[str]:
    return [n.name for n in ast.parse(text).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]


def class_source(model_type: str, name: str) -> str:
    import transformers
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    module = model_type_to_module_name(model_type)
    path = Path(transformers.__file__).parent / "models" / module / f"modeling_{module}.py"
    text = path.read_text()
    node = next(n for n in _modeling(model_type).body if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_source_segment(text, node)


# -- moe_granite_gating -------------------------------------------------------------------------------------

def test_granite_shape_is_found_by_structure_not_by_name():
    assert dict(granite_shaped("jetmoe")) == {"JetMoeTopKGating": "_granite_moe_topk_gating_forward",
                                              "JetMoeParallelExperts": "_granite_moe_parallel_experts_forward"}
    assert granite_shaped("granitemoe") == ()  # the reference itself is upstream already
    assert granite_shaped("olmoe") == () and granite_shaped("llama") == ()
    gating = class_source("jetmoe", "JetMoeTopKGating")
    renamed = gating.replace("JetMoeTopKGating", "OtherGate").replace("Initialize the top-k", "Set up the top-k")
    assert shaped_in(ast.parse(renamed)) == (("OtherGate", "_granite_moe_topk_gating_forward"),)
    # one statement different (no list of counts): not the known shape, so not this pattern's to fix
    changed = gating.replace("expert_size = expert_size.tolist()", "expert_size = expert_size")
    assert changed != gating and shaped_in(ast.parse(changed)) == ()


def test_granite_precondition_needs_both_halves_and_the_upstream_helpers(ws):
    assert GRANITE_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "jetmoe")) is None  # helpers absent
    with_granite_helpers(ws)
    reason = GRANITE_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "jetmoe"))
    assert "JetMoeTopKGating" in reason and "JetMoeParallelExperts" in reason
    assert GRANITE_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe")) is None  # experts interface
    assert GRANITE_EXPERTS.precondition(ctx(ws, "LlamaOpenVINOConfig", "llama")) is None


def test_granite_edit_adds_a_patcher_that_installs_the_upstream_forwards(ws):
    with_granite_helpers(ws)
    before = snapshot(ws)
    edit, result = write(ws, ctx(ws, "LlamaOpenVINOConfig", "jetmoe"), GRANITE_EXPERTS)
    after = snapshot(ws)
    assert_additive(before, after)
    assert set(result.changed) >= {CONFIGS, PATCHER}
    names = top_level(after[PATCHER])
    assert names[names.index("OVDecoderModelPatcher") + 1] == "JetmoeModelPatcher"
    assert names.count("_granite_moe_topk_gating_forward") == 1  # reused by name, not copied
    assert "    _MODEL_PATCHER = JetmoeModelPatcher\n" in after[CONFIGS]
    again = snapshot(ws)
    write(ws, ctx(ws, "LlamaOpenVINOConfig", "jetmoe"), GRANITE_EXPERTS)
    assert snapshot(ws) == again  # idempotent


class _Base:
    def __init__(self, model):
        self._model = model
        self.entered = self.exited = False

    def __enter__(self):
        self.entered = True

    def __exit__(self, *exc):
        self.exited = True


def test_granite_patcher_swaps_forwards_for_the_export_and_restores_them():
    gate_cls = type("JetMoeTopKGating", (), {"forward": lambda self, x: "own gate"})
    experts_cls = type("JetMoeParallelExperts", (), {"forward": lambda self, x, n: "own experts"})
    other_cls = type("JetMoeMoE", (), {"forward": lambda self, x: "block"})
    mods = [gate_cls(), experts_cls(), experts_cls(), other_cls()]
    model = types.SimpleNamespace(modules=lambda: iter(mods))
    found = (("JetMoeTopKGating", "_granite_moe_topk_gating_forward"),
             ("JetMoeParallelExperts", "_granite_moe_parallel_experts_forward"))
    space = {"_Base": _Base, "types": types, "_granite_moe_topk_gating_forward": lambda self, x: "gate",
             "_granite_moe_parallel_experts_forward": lambda self, x, n: "experts"}
    exec(patcher_source("P", "_Base", found), space)
    patcher = space["P"](model)
    with patcher:
        assert patcher.entered
        assert [m.forward(1) if i in (0, 3) else m.forward(1, 2) for i, m in enumerate(mods)] == \
            ["gate", "experts", "experts", "block"]
    assert patcher.exited
    assert [mods[0].forward(1), mods[1].forward(1, 2), mods[2].forward(1, 2)] == ["own gate"] + ["own experts"] * 2
    assert not any(hasattr(m, "_ov_moe_orig_forward") for m in mods)


def test_granite_forwards_compute_what_jetmoe_computes():
    torch = pytest.importorskip("torch")
    patcher_module = pytest.importorskip("optimum.exporters.openvino.model_patcher")
    if not all(hasattr(patcher_module, h) for h in HELPERS):
        pytest.skip("this optimum-intel has no GraniteMoe forwards")
    from transformers import AutoModelForCausalLM

    cfg = AutoConfig.for_model("jetmoe", hidden_size=32, num_hidden_layers=1, num_key_value_heads=2, kv_channels=8,
                               intermediate_size=16, num_local_experts=4, num_experts_per_tok=2, vocab_size=64)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        want = model(ids).logits
        for module in model.modules():
            helper = {"JetMoeTopKGating": "_granite_moe_topk_gating_forward",
                      "JetMoeParallelExperts": "_granite_moe_parallel_experts_forward"}.get(type(module).__name__)
            if helper:
                module.forward = types.MethodType(getattr(patcher_module, helper), module)
        got = model(ids).logits
    assert torch.allclose(want, got, atol=1e-5)


# -- moe_grouped_gemm_batched -------------------------------------------------------------------------------

GROUPED = '''
class Gemm(nn.Module):
    def __init__(self, in_features, out_features, groups):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))

    def forward(self, input, tokens_per_expert):
        return grouped(input, self.weight, tokens_per_expert)


class Experts(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc1 = Gemm(config.hidden_size, config.intermediate_size * 2, config.moe_num_experts)
        self.fc2 = Gemm(config.intermediate_size, config.hidden_size, config.moe_num_experts)

    def route_tokens_to_experts(self, router_logits):
        top_logits, top_indices = torch.topk(router_logits, k=2, dim=1)
        return top_indices, nn.functional.softmax(top_logits, dim=-1)

    def forward(self, hidden_states, router_logits):
        top_k_index, top_k_weights = self.route_tokens_to_experts(router_logits)
        h = self.fc1(hidden_states, top_k_index)
        projection, gate = torch.chunk(h, 2, dim=-1)
        h = nn.functional.silu(projection) * gate
        out = self.fc2(h, top_k_index)
        return (out * top_k_weights.unsqueeze(-1)).sum(dim=1)
'''


def test_grouped_gemm_shape_is_recognised_structurally():
    (aria,) = grouped_experts("aria_text")
    assert (aria.name, aria.gemm, aria.activation, aria.act_on) == \
        ("AriaExperts", "AriaGroupedExpertsGemm", "torch.nn.functional.silu", 0)
    assert grouped_experts("olmoe") == () and grouped_experts("jetmoe") == () and grouped_experts("llama") == ()
    (mine,) = grouped_in(ast.parse(GROUPED))
    assert (mine.name, mine.gemm, mine.act_on) == ("Experts", "Gemm", 0)
    # the activation on the second half: the gate follows it
    assert grouped_in(ast.parse(GROUPED.replace("silu(projection) * gate", "silu(gate) * projection")))[0].act_on == 1
    # (groups, out, in) weights are not the transposed layout the forward hands over
    swapped = GROUPED.replace("empty(groups, in_features, out_features)", "empty(groups, out_features, in_features)")
    gemm = next(n for n in ast.parse(swapped).body if getattr(n, "name", "") == "Gemm")
    assert not transposed_gemm(gemm) and grouped_in(ast.parse(swapped)) == ()
    for broken in ("myact(projection) * gate", "silu(projection) + gate"):  # unknown spelling, no gating product
        assert grouped_in(ast.parse(GROUPED.replace("nn.functional.silu(projection) * gate", broken))) == ()
    assert grouped_in(ast.parse(GROUPED.replace(".sum(dim=1)", ""))) == ()  # no weighted sum: another shape


def test_grouped_precondition_needs_the_upstream_batched_forward(ws):
    assert "AriaExperts" in GROUPED_GEMM.precondition(ctx(ws, "LlamaOpenVINOConfig", "aria_text"))
    assert GROUPED_GEMM.precondition(ctx(ws, "LlamaOpenVINOConfig", "olmoe")) is None
    patcher = ws / PATCHER
    patcher.write_text(patcher.read_text().replace("def batched_mm_experts_forward_patched(", "def older("))
    assert GROUPED_GEMM.precondition(ctx(ws, "LlamaOpenVINOConfig", "aria_text")) is None


def test_grouped_edit_adds_a_forward_calling_the_upstream_one_and_a_patcher(ws):
    before = snapshot(ws)
    edit, result = write(ws, ctx(ws, "LlamaOpenVINOConfig", "aria_text"), GROUPED_GEMM)
    after = snapshot(ws)
    assert_additive(before, after)
    names = top_level(after[PATCHER])
    forward = forward_name("aria_text")
    assert forward == "_aria_text_experts_forward_patched"
    assert names[names.index("register_ov_batched_mm") + 1] == forward
    assert names[names.index("OVDecoderModelPatcher") + 1] == "AriaTextModelPatcher"
    assert names.count("batched_mm_experts_forward_patched") == 1
    tree = ast.parse(after[PATCHER])
    func = next(n for n in tree.body if getattr(n, "name", "") == forward)
    calls = {ast.unparse(n.func) for n in ast.walk(func) if isinstance(n, ast.Call)}
    assert {"batched_mm_experts_forward_patched", "self.route_tokens_to_experts"} <= calls
    assert "    _MODEL_PATCHER = AriaTextModelPatcher\n" in after[CONFIGS]
    again = snapshot(ws)
    write(ws, ctx(ws, "LlamaOpenVINOConfig", "aria_text"), GROUPED_GEMM)
    assert snapshot(ws) == again


def test_grouped_forward_computes_what_aria_computes():
    torch = pytest.importorskip("torch")
    patcher_module = pytest.importorskip("optimum.exporters.openvino.model_patcher")
    from transformers.models.aria.modeling_aria import AriaExperts, AriaTextConfig

    cfg = AriaTextConfig(hidden_size=32, intermediate_size=16, moe_num_experts=4, moe_topk=2)
    torch.manual_seed(0)
    experts = AriaExperts(cfg)
    for gemm in (experts.fc1, experts.fc2):
        torch.nn.init.normal_(gemm.weight, std=0.2)
    hidden, logits = torch.randn(9, 32), torch.randn(9, 4)
    (shape,) = grouped_experts("aria_text")
    space = dict(vars(patcher_module))
    exec(textwrap.dedent(forward_source("f", shape)), space)
    with torch.no_grad():
        want = experts(hidden, logits)
        got = space["f"](experts, hidden, logits)
    assert got.shape == want.shape and torch.allclose(want, got, atol=1e-5)
