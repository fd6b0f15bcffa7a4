"""Verification job for VeOmni, run inside a sandbox of VeOmni's own stack (CPU torch, transformers 5.9).

Usage: python verify.py SPEC.json
SPEC: {"phase": "generate"|"verify", "workspace", "out_dir", "model_type", "package", "config_module",
       "architecture", "toy_config", "ep_sizes", "tolerance", "tests": [...], "test_keyword"}
- generate: runs the checkout's own patchgen (patchgen-pkg/) on the package's patch config into
  out_dir/generated; the host copies the result into the workspace (the workspace is read-only here).
- verify: registry, `patchgen --check`, the expert-parallel plan on the meta-device model, CPU parity of
  the VeOmni-built toy model against the Hugging Face one, and the repository's CPU tests.
Prints one JSON report as the last line of stdout. Standard library and VeOmni's stack only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

# Modules that exist only on GPU machines: a generated file importing one at module level cannot run here.
GPU_ONLY = ("liger_kernel", "flash_attn", "triton", "flash_mla", "deep_ep", "quack", "cutlass", "cuda")
# A toy of this size builds and runs in seconds on two cores and still has every module the model has.
SHRINK = {"hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256, "num_hidden_layers": 2,
          "max_position_embeddings": 128, "shared_expert_intermediate_size": 64}
MAX_EXPERTS = 8


def _check(name, status, detail="", **metrics):
    return {"name": name, "status": status, "detail": detail, "metrics": metrics}


def _first_error(exc: BaseException) -> str:
    lines = [ln for ln in traceback.format_exception_only(type(exc), exc) if ln.strip()]
    return " ".join(lines[-1].split())[:600]


def _gpu_only(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in GPU_ONLY:
        return exc.name
    return None


def _env(ws: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ws, f"{ws}/patchgen-pkg", env.get("PYTHONPATH", "")])
    # ruff and pytest come from this interpreter's environment; nothing may write into the workspace.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env.update(PYTHONDONTWRITEBYTECODE="1", RUFF_NO_CACHE="true", HF_HUB_OFFLINE="1", MODELING_BACKEND="veomni")
    return env


def _run(cmd, ws, timeout):
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=ws, env=_env(ws), capture_output=True, text=True, timeout=timeout)
    return proc, round(time.monotonic() - t, 2)


# -- generate --------------------------------------------------------------------------------------------
def generate(spec: dict) -> list[dict]:
    ws, out = spec["workspace"], Path(spec["out_dir"]) / "generated"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "patchgen.cli", spec["config_module"], "-o", str(out), "--diff"]
    proc, secs = _run(cmd, ws, spec.get("timeout", 600))
    made = sorted(p.name for p in out.iterdir())
    if proc.returncode != 0 or not any(n.endswith(".py") for n in made):
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])[-700:]
        return [_check("patchgen_generate", "failed", f"patchgen exited {proc.returncode}: {tail}", seconds=secs)]
    return [_check("patchgen_generate", "passed", f"generated {', '.join(made)}", seconds=secs, files=made)]


# -- verify ----------------------------------------------------------------------------------------------
def registry_check(spec: dict):
    from veomni.models.loader import MODELING_REGISTRY
    import veomni.models.transformers  # noqa: F401  (registers every package)

    mt, pkg = spec["model_type"], spec["package"]
    if mt not in MODELING_REGISTRY.valid_keys():
        return _check("registry", "failed", f"registry lacks {mt}"), None
    try:
        cls = MODELING_REGISTRY[mt](spec["architecture"])
    except Exception as exc:  # noqa: BLE001 - the message is the finding
        gpu = _gpu_only(exc)
        if gpu:
            return _check("registry", "failed", f"GPU-only: the generated code hard-imports {gpu}; "
                          "cannot run on CPU", gpu_only=gpu), None
        return _check("registry", "failed", f"resolving {mt}: {_first_error(exc)}"), None
    where = f"veomni.models.transformers.{pkg}."
    if not cls.__module__.startswith(where):
        return _check("registry", "failed", f"{mt} resolves to {cls.__module__}.{cls.__name__}, not {where}*"), None
    return _check("registry", "passed", f"{mt} -> {cls.__module__}.{cls.__name__}"), cls


def patchgen_check(spec: dict):
    proc, secs = _run([sys.executable, "-m", "patchgen.cli", "--check"], spec["workspace"], spec.get("timeout", 600))
    out = (proc.stdout + proc.stderr).strip().splitlines()
    drift = [ln.strip() for ln in out if ln.strip().startswith("DRIFT")]
    if proc.returncode != 0:
        return _check("patchgen_check", "failed", f"exit {proc.returncode}: " + ("; ".join(drift[:4]) or
                      " ".join(out[-3:])[-500:]), seconds=secs)
    ok = sum(1 for ln in out if ln.strip().startswith("OK"))
    return _check("patchgen_check", "passed", f"{ok} generated files up to date", seconds=secs, files_ok=ok)


def toy_config(spec: dict):
    """The package's toy config, shrunk (and its expert count capped) so CPU parity takes seconds."""
    from transformers import AutoConfig

    raw = json.loads((Path(spec["workspace"]) / spec["toy_config"]).read_text())
    for key, value in SHRINK.items():
        if key in raw:
            raw[key] = value
    for key in ("num_experts", "num_local_experts", "n_routed_experts"):
        if isinstance(raw.get(key), int):
            raw[key] = min(raw[key], MAX_EXPERTS)
    if isinstance(raw.get("num_experts_per_tok"), int):
        raw["num_experts_per_tok"] = min(raw["num_experts_per_tok"], 2)
    for key in ("first_k_dense_replace",):
        if isinstance(raw.get(key), int):
            raw[key] = min(raw[key], 1)
    raw.pop("layer_types", None)  # recomputed by the config class for the new layer count
    d = Path(spec["out_dir"]) / "toy"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(raw, indent=2))
    return AutoConfig.from_pretrained(str(d)), d


def _moe_layers(model) -> dict[str, list[str]]:
    """Per routed-experts module (a module named `experts`), its parameter names."""
    names = [n for n, _ in model.named_parameters()]
    mods = [m for m, _ in model.named_modules() if m.endswith(".experts") or m == "experts"]
    return {m: [n for n in names if n.startswith(m + ".")] for m in mods}


def plan_problems(plan: dict, shapes: dict, experts: dict, ep_sizes: list, match) -> tuple[list, dict]:
    """Problems of an EP plan {pattern: shard dim} over {param: shape}; `experts` maps each routed-experts
    module to its parameter names, `match(pattern, name)` is VeOmni's check_fqn_match."""
    problems, seen, covered = [], {}, set()
    for pattern, dim in plan.items():
        hits = [n for n in shapes if match(pattern, n)]
        if not hits:
            problems.append(f"pattern {pattern} matches no parameter")
            continue
        outside = [n for n in hits if not any(n.startswith(m + ".") for m in experts)]
        if outside:
            problems.append(f"pattern {pattern} shards {outside[0]}, outside the routed experts "
                            "(shared experts and gates must stay unsharded)")
        for m in experts:
            k = sum(1 for n in hits if n.startswith(m + "."))
            if k != 1:
                problems.append(f"pattern {pattern} matches {k} parameters in {m} (want exactly 1)")
                break
        for n in hits:
            covered.add(n)
            bad = [e for e in ep_sizes if shapes[n][dim] % e]
            if bad:
                problems.append(f"{n} dim {dim} = {shapes[n][dim]} does not divide by EP {bad}")
        seen[pattern] = shapes[hits[0]]
    missed = sorted({n.split(".")[-1] for ns in experts.values() for n in ns if n not in covered})
    if missed:
        problems.append(f"expert parameters left unsharded: {', '.join(missed)}")
    return problems, seen


def plan_check(spec: dict, cls, config) -> dict:
    import torch

    with torch.device("meta"):
        model = cls(config)
    experts = _moe_layers(model)
    params = dict(model.named_parameters())
    get_plan = getattr(model, "get_parallel_plan", None)
    if not experts:
        if get_plan is not None and spec.get("has_plan"):
            return _check("expert_plan", "failed", "the model has no experts module but the package ships a plan")
        return _check("expert_plan", "skipped", "dense model: no routed experts, no plan needed")
    if get_plan is None:
        return _check("expert_plan", "failed", f"{len(experts)} MoE layers but the class has no get_parallel_plan")
    from veomni.distributed.utils import check_fqn_match

    ep = (get_plan().extra_parallel_plan or {}).get("ep") or {}
    if not ep:
        return _check("expert_plan", "failed", "get_parallel_plan() has no 'ep' entries")
    shapes_all = {n: list(p.shape) for n, p in params.items()}
    plan = {pattern: getattr(placement, "dim", 0) for pattern, placement in ep.items()}
    problems, shapes = plan_problems(plan, shapes_all, experts, spec["ep_sizes"], check_fqn_match)
    detail = "; ".join(dict.fromkeys(problems))[:900] or (
        f"{len(ep)} patterns, each one parameter in each of {len(experts)} MoE layers, divisible by EP "
        f"{spec['ep_sizes']}")
    return _check("expert_plan", "failed" if problems else "passed", detail, shapes=shapes,
                  moe_layers=len(experts), patterns=list(ep))


def parity_check(spec: dict, toy_dir: Path) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from veomni.arguments.arguments_types import OpsImplementationConfig
    from veomni.models.auto import build_foundation_model

    torch.manual_seed(0)
    ops = OpsImplementationConfig(**{f: "eager" for f in OpsImplementationConfig.__dataclass_fields__
                                     if f.endswith("_implementation")})
    ours = build_foundation_model(str(toy_dir), torch_dtype="float32", init_device="cpu", ops_implementation=ops)
    cfg = AutoConfig.from_pretrained(str(toy_dir))
    ref = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    if not type(ours).__module__.startswith(f"veomni.models.transformers.{spec['package']}."):
        return _check("parity", "failed", f"builder returned {type(ours).__module__}, not the package's class")
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    if missing or unexpected:
        return _check("parity", "failed", f"state dicts differ: missing {missing[:4]}, unexpected {unexpected[:4]}")
    ids = torch.randint(0, cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    out = {}
    for name, model in (("hf", ref), ("veomni", ours)):
        model.train()
        model.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits
        # VeOmni's op config turns the model's loss_function into a tuple: cross-entropy from the logits.
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                 ids[:, 1:].reshape(-1))
        loss.backward()
        gn = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters() if p.grad is not None))
        out[name] = (logits.detach(), float(loss), float(gn))
    dlog = float((out["hf"][0] - out["veomni"][0]).abs().max())
    dloss, dgn = abs(out["hf"][1] - out["veomni"][1]), abs(out["hf"][2] - out["veomni"][2])
    tol = spec["tolerance"]
    ok = dlog <= tol and dloss <= tol and dgn <= tol * max(1.0, out["hf"][2])
    return _check("parity", "passed" if ok else "failed",
                  f"max|Δlogits| {dlog:.3g}, |Δloss| {dloss:.3g}, |Δgrad-norm| {dgn:.3g} (tolerance {tol})",
                  max_abs_logits=dlog, dloss=dloss, dgrad_norm=dgn, loss=out["hf"][1], grad_norm=out["hf"][2],
                  shape=list(out["hf"][0].shape))


def tests_check(spec: dict) -> dict:
    ws = spec["workspace"]
    files = [t for t in spec.get("tests", []) if (Path(ws) / t).is_file()]
    if not files:
        return _check("repo_tests", "skipped", "none of the CPU test files exist in this checkout")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *files,
           "-k", spec.get("test_keyword") or "not remote"]
    proc, secs = _run(cmd, ws, spec.get("tests_timeout", 1200))
    tail = (proc.stdout or "").strip().splitlines()[-1:] or [""]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped|xfailed)", tail[0])}
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not failed):
        return _check("repo_tests", "failed", f"pytest exit {proc.returncode}: {tail[0][:300]}", seconds=secs)
    fails = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("FAILED ")][:5]
    return _check("repo_tests", "failed" if failed else "passed", tail[0][:300] + (
        f" — first failures: {'; '.join(fails)}" if fails else ""), seconds=secs, files=files, **counts)


def verify(spec: dict) -> list[dict]:
    sys.path[:0] = [spec["workspace"], f"{spec['workspace']}/patchgen-pkg"]
    os.environ.update(MODELING_BACKEND="veomni", HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    sys.dont_write_bytecode = True
    checks = []
    try:
        reg, cls = registry_check(spec)
    except Exception as exc:  # noqa: BLE001
        reg, cls = _check("registry", "failed", f"importing veomni: {_first_error(exc)}"), None
    checks.append(reg)
    checks.append(patchgen_check(spec))
    if cls is not None:
        try:
            config, toy_dir = toy_config(spec)
            checks.append(plan_check(spec, cls, config))
        except Exception as exc:  # noqa: BLE001
            checks.append(_check("expert_plan", "failed", _first_error(exc)))
            toy_dir = None
        if toy_dir is not None:
            try:
                checks.append(parity_check(spec, toy_dir))
            except Exception as exc:  # noqa: BLE001
                gpu = _gpu_only(exc)
                checks.append(_check("parity", "failed", f"GPU-only import {gpu}" if gpu else _first_error(exc)))
    else:
        checks += [_check(n, "skipped", "the registry did not resolve the class") for n in ("expert_plan", "parity")]
    if spec.get("run_tests"):
        checks.append(tests_check(spec))
    return checks


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    t = time.monotonic()
    try:
        checks = generate(spec) if spec["phase"] == "generate" else verify(spec)
    except Exception as exc:  # noqa: BLE001 - a report, never a bare traceback
        checks = [_check(f"sandbox:{spec['phase']}", "failed", _first_error(exc))]
    report = {"checks": checks, "timings": {spec["phase"]: round(time.monotonic() - t, 2)}}
    (Path(spec["out_dir"]) / f"report-{spec['phase']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
