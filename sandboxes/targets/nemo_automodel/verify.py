"""The in-sandbox job of NeMo AutoModel: prove a model directory and its registry entry
(`python verify.py spec.json`).

Runs inside the sandbox with the checkout's source on PYTHONPATH, CPU torch and the transformers the
repository pins; imports nothing from this project. The reference is the transformers model built from
the tiny config (itself derived from the real config.json) and saved with `save_pretrained`, so the
adapter is fed the on-disk layout (one tensor per expert), not transformers' fused in-memory one.
Prints one JSON line: {"checks": [...], "timings": {...}}.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import repo_tests  # noqa: E402
from provenance import check_provenance, tag_state_dict  # noqa: E402

SEQ, BATCH, STEPS = 16, 2, 3


def _check(name, ok, detail="", **metrics):
    return {"name": name, "status": "passed" if ok else "failed", "detail": detail, "metrics": metrics}


def _skip(name, detail):
    return {"name": name, "status": "skipped", "detail": detail, "metrics": {}}


def _cpu_shims(torch):
    """What the repository's CPU tests do: model constructors ask torch.cuda for a device (the rotary
    cache is moved to CPU by initialize_weights), and the fused SwiGLU helper is torch.compile'd; the
    eager form below is the one the repository's own CPU tests substitute (tests/unit_tests/models/laguna)."""
    torch.cuda.current_device = lambda: 0
    try:
        from nemo_automodel.components.moe.megatron import moe_utils
    except ImportError:
        return

    def weighted_swiglu_eager(y, weights):
        y1, y2 = torch.chunk(y, 2, -1)
        return (torch.nn.functional.silu(y1) * y2 * weights).to(y.dtype)

    moe_utils.weighted_swiglu = weighted_swiglu_eager


def _mutate(hf_sd: dict, how: str | None) -> dict:
    """Deliberate mapping bugs, so a test can prove the checks catch them (never used by a real run)."""
    if not how:
        return hf_sd
    out = {}
    for key, value in hf_sd.items():
        new = key
        if how == "swap_experts" and ".experts.0." in key:
            new = key.replace(".experts.0.", ".experts.1.")
        elif how == "swap_experts" and ".experts.1." in key:
            new = key.replace(".experts.1.", ".experts.0.")
        elif how == "router_as_expert" and key.endswith(".mlp.gate.weight"):
            new = key.replace(".mlp.gate.weight", ".mlp.experts.gate.weight")
        out[new] = value
    return out


def _randomize(model, torch):
    """transformers zero-initialises routers and sets norms to one: random values everywhere make a
    wrong mapping visible in the logits (a zero router routes every token alike)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if "norm" in name and p.dim() == 1 else 0.0
            p.copy_(base + 0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _load_on_disk(model, tmp: Path):
    from safetensors.torch import load_file

    model.save_pretrained(tmp, safe_serialization=True)
    sd = {}
    for f in sorted(tmp.glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd


def _nemo_model(arch: str, config, torch):
    from nemo_automodel._transformers.registry import MODEL_ARCH_MAPPING
    from nemo_automodel.components.models.common import BackendConfig
    import importlib

    module, cls_name = MODEL_ARCH_MAPPING[arch][:2]
    cls = getattr(importlib.import_module(module), cls_name)
    backend = BackendConfig(attn="sdpa", linear="torch", rms_norm="torch_fp32", experts="torch",
                            dispatcher="torch", enable_hf_state_dict_adapter=True)
    model = cls(config, backend=backend)  # as the repository's model_init does: model_cls(hf_config, **kwargs)
    # NeMo-native classes take a buffer device (their rotary cache); transformers-based ones need nothing:
    # the checkpoint is loaded over every weight next.
    init = getattr(model, "initialize_weights", None)
    if init is not None and "buffer_device" in inspect.signature(init).parameters:
        init(buffer_device=torch.device("cpu"), dtype=torch.float32)
    return model.float(), f"{module}.{cls_name}"


def _config(spec, tiny: dict):
    """The transformers config of the tiny model, or the repository's own class for a custom model_type."""
    from transformers import AutoConfig

    try:
        from nemo_automodel._transformers.registry import resolve_custom_config_cls
        custom = resolve_custom_config_cls(tiny["model_type"])
    except ImportError:
        custom = None
    data = {k: v for k, v in tiny.items() if k != "model_type"}
    config = custom(**data) if custom else AutoConfig.for_model(tiny["model_type"], **data)
    config._attn_implementation = "eager"
    # Without this the adapter and model default to bf16 and the round trip is off by ~2e-4.
    import torch

    config.torch_dtype = torch.float32  # a dtype, not a string: some classes call model.to(config.torch_dtype)
    config.dtype = torch.float32
    return config


def run(spec: dict) -> dict:
    timings, checks = {}, []
    t0 = time.monotonic()
    import torch

    torch.manual_seed(0)
    _cpu_shims(torch)
    tiny = json.loads((Path(spec["tiny_dir"]) / "config.json").read_text())
    arch = spec["arch"]
    from transformers import AutoModelForCausalLM

    from nemo_automodel._transformers.registry import MODEL_ARCH_MAPPING

    if arch not in MODEL_ARCH_MAPPING:
        return {"checks": [_check("registry", False, f"MODEL_ARCH_MAPPING has no {arch}")], "timings": timings}
    checks.append(_check("registry", True, f"{arch} -> {MODEL_ARCH_MAPPING[arch][0]}"))
    config = _config(spec, tiny)
    hf = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32).eval()
    _randomize(hf, torch)
    with tempfile.TemporaryDirectory() as tmp:
        hf_sd = _load_on_disk(hf, Path(tmp))
    timings["reference"] = time.monotonic() - t0
    try:
        # A fresh config: building the transformers model rewrites config.dtype as a string.
        model, where = _nemo_model(arch, _config(spec, tiny), torch)
    except Exception as exc:  # the candidate's code: any failure is a finding, reported in one line
        checks.append(_check("build", False, f"{type(exc).__name__}: {str(exc)[:300]}"))
        return {"checks": checks, "timings": timings}
    checks.append(_check("build", True, where))
    adapter = getattr(model, "state_dict_adapter", None)
    if adapter is None:
        checks.append(_check("adapter", False, "the model has no state_dict_adapter"))
        return {"checks": checks, "timings": timings}
    mutate = spec.get("mutate")

    n_experts = int(tiny.get("num_experts") or tiny.get("num_local_experts") or tiny.get("n_routed_experts") or 0)
    if n_experts:
        # What the adapter must read is the checkpoint as written: one tensor per expert, not the fused
        # in-memory parameters of transformers 5.
        per_expert = {int(k.split(".experts.")[1].split(".")[0]) for k in hf_sd if re.search(r"\.experts\.\d+\.", k)}
        fused = sorted(k for k in hf_sd if re.search(r"\.experts\.(gate_up_proj|down_proj)$", k))
        ok = per_expert == set(range(n_experts)) and not fused
        checks.append(_check("on_disk_layout", ok, f"experts {sorted(per_expert)} written one by one" if ok
                             else f"per-expert indices {sorted(per_expert)}, fused tensors {fused[:2]}"))

    # 1. provenance of every tensor, on a state dict whose elements are numbered
    tagged, index = tag_state_dict(hf_sd, torch)
    native_tagged = adapter.from_hf(_mutate(tagged, mutate))
    checks.append(check_provenance(tagged, index, native_tagged, dict(model.state_dict()), torch,
                                   n_experts=n_experts))

    # 2. key map, load, exact round trip
    native = adapter.from_hf(_mutate(dict(hf_sd), mutate))
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(native)), sorted(set(native) - set(own))
    bad_shape = [k for k in set(own) & set(native) if tuple(own[k].shape) != tuple(native[k].shape)]
    ok = not missing and not extra and not bad_shape
    checks.append(_check("key_map", ok, "" if ok else f"missing {missing[:4]}, unexpected {extra[:4]}, "
                         f"shape {bad_shape[:4]}", native_keys=len(native), hf_keys=len(hf_sd)))
    if not ok:
        return {"checks": checks, "timings": timings}
    model.load_state_dict(native, strict=True)
    back = adapter.to_hf(model.state_dict())
    diff_keys = sorted(set(back) ^ set(hf_sd))
    unequal = [k for k in set(back) & set(hf_sd)
               if back[k].dtype != hf_sd[k].dtype or back[k].shape != hf_sd[k].shape
               or not torch.equal(back[k], hf_sd[k])]
    ok = not diff_keys and not unequal
    checks.append(_check("round_trip", ok, "" if ok else f"keys differ {diff_keys[:4]}, values differ {unequal[:4]}",
                         tensors=len(hf_sd)))

    # 3. logits parity against transformers, float32
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, int(tiny["vocab_size"]), (BATCH, SEQ), generator=gen)
    with torch.no_grad():
        ref = hf(input_ids=ids).logits.float()
        model.eval()
        got = model(ids)
        got = (got.logits if hasattr(got, "logits") else got).float()
    diff = float((ref - got).abs().max())
    tol = float(spec.get("tolerance", 1e-5))
    checks.append(_check("logits_parity", diff <= tol, f"max |Δlogits| {diff:.3g} (tolerance {tol:g})",
                         max_abs_diff=diff, tolerance=tol))

    # 4. a few training steps reduce the loss
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(STEPS):
        out = model(ids)
        logits = out.logits if hasattr(out, "logits") else out
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    checks.append(_check("training", losses[-1] < losses[0], " -> ".join(f"{x:.3f}" for x in losses),
                         losses=losses))
    timings["checks"] = time.monotonic() - t0
    if spec.get("tests"):
        checks.extend(repo_tests.run(spec["workspace"], spec["tests"], spec["out_dir"], _check))
    timings["total"] = time.monotonic() - t0
    return {"checks": checks, "timings": timings}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    try:
        report = run(spec)
    except Exception as exc:  # any failure of the job itself is a failed check, never a pass
        report = {"checks": [_check("job", False, f"{type(exc).__name__}: {str(exc)[:400]}")], "timings": {}}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
