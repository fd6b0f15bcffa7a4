"""The in-sandbox job of FlashInfer-Bench: prove new Definition files (`python verify.py spec.json`).

Each file is checked against the repository's own Definition model and its reference is run on CPU with
random inputs of the declared shapes. This file runs inside the sandbox, where this project is not
installed: it must import nothing from it, only the standard library, torch and (when present)
flashinfer_bench.
"""

from __future__ import annotations

import json
import sys
import time

# Beyond this many tensor elements a CPU reference run would take minutes and gigabytes: skipped, with
# the reason, never counted as passed.
MAX_ELEMENTS = 150_000_000

VAR_SIZES = {"batch_size": 2, "M": 3, "seq_len": 3, "num_tokens": 3, "total_q": 5, "total_kv": 7,
             "num_pages": 8, "max_seq_len": 16}


def _inputs(defn: dict, torch):
    """Random inputs of the declared shapes; index tensors (indptr, indices, positions) are made valid."""
    var = {}
    for axis, spec in defn["axes"].items():
        if spec.get("type") == "var":
            var[axis] = VAR_SIZES.get(axis, 4)
    ins = defn["inputs"]
    batch = var.get("batch_size", 2)
    if "qo_indptr" in ins:  # ragged/paged prefill: split total_q (and total_kv) over the batch
        batch = 2
    sizes = {**{a: s["value"] for a, s in defn["axes"].items() if s.get("type") == "const"}, **var}
    for nm in ("len_indptr",):
        if nm in sizes:
            sizes[nm] = batch + 1
    q_per, kv_per = 2, 3
    if "total_q" in sizes:
        sizes["total_q"] = q_per * batch
    if "total_kv" in sizes:
        sizes["total_kv"] = kv_per * batch
    if "num_kv_indices" in sizes:
        sizes["num_kv_indices"] = kv_per * batch
        sizes["num_pages"] = max(sizes.get("num_pages", 8), kv_per * batch)
    total = 0
    for spec in ins.values():
        n = 1
        for axis in spec["shape"] or []:
            n *= sizes[axis]
        total += n
    if total > MAX_ELEMENTS:
        return None, f"inputs need {total:,} elements (> {MAX_ELEMENTS:,}): too large for a CPU run"
    out = []
    for name, spec in ins.items():
        shape = [sizes[a] for a in spec["shape"] or []]
        dtype = getattr(torch, spec["dtype"])
        if name == "qo_indptr":
            t = torch.arange(batch + 1, dtype=dtype) * q_per
        elif name == "kv_indptr":
            t = torch.arange(batch + 1, dtype=dtype) * kv_per
        elif name.endswith("indices"):
            t = torch.randperm(sizes.get("num_pages", 8))[: shape[0]].to(dtype)
        elif name == "positions":
            t = torch.randint(0, sizes.get("max_seq_len", 16), shape, dtype=dtype)
        elif name in ("sm_scale", "scale"):
            t = torch.tensor(1.0 / (sizes.get("head_dim", sizes.get("qk_dim", 64)) ** 0.5), dtype=dtype)
        elif name == "probs":
            t = torch.softmax(torch.randn(shape), dim=-1).to(dtype)
        elif name == "top_k":
            t = torch.full(shape, 5, dtype=dtype)
        elif name == "top_p":
            t = torch.full(shape, 0.9, dtype=dtype)
        elif not dtype.is_floating_point:
            t = torch.randint(0, 4, shape, dtype=dtype)
        else:
            # uniform in [-1, 1), drawn in the declared dtype: large weights stay cheap to make
            t = (torch.rand(shape, dtype=dtype) * 2 - 1) if shape and dtype.itemsize >= 2 else \
                (torch.rand(shape) * 2 - 1).to(dtype) if shape else torch.tensor(1.0).to(dtype)
        out.append(t)
    return out, ""


def definition_model(workspace: str):
    """The repository's own Definition model. Its package __init__ pulls in CUDA-only dependencies, so when
    the plain import fails the data subpackage is loaded from the workspace without running __init__."""
    try:
        from flashinfer_bench.data import Definition
        return Definition
    except Exception:  # noqa: BLE001
        import os
        import types

        root = os.path.join(workspace, "flashinfer_bench")
        if not os.path.isfile(os.path.join(root, "data", "definition.py")):
            raise
        for key in [k for k in sys.modules if k == "flashinfer_bench" or k.startswith("flashinfer_bench.")]:
            del sys.modules[key]
        for name, path in (("flashinfer_bench", root), ("flashinfer_bench.data", os.path.join(root, "data"))):
            mod = types.ModuleType(name)
            mod.__path__ = [path]
            sys.modules[name] = mod
        from flashinfer_bench.data.definition import Definition
        return Definition


def check_definition(defn: dict, workspace: str = ".") -> list[dict]:
    checks = []
    name = defn.get("name", "?")
    try:
        Definition = definition_model(workspace)
    except Exception as exc:  # noqa: BLE001 - any import failure means the schema check cannot run here
        checks.append({"name": f"schema:{name}", "status": "skipped",
                       "detail": f"flashinfer_bench is not importable here: {type(exc).__name__}: {exc}"[:300]})
    else:
        try:
            Definition.model_validate(defn)
            checks.append({"name": f"schema:{name}", "status": "passed", "detail": "flashinfer_bench Definition"})
        except Exception as exc:  # noqa: BLE001
            checks.append({"name": f"schema:{name}", "status": "failed", "detail": str(exc)[:500]})
    import torch

    torch.manual_seed(0)
    start = time.monotonic()
    inputs, why = _inputs(defn, torch)
    if inputs is None:
        checks.append({"name": f"reference:{name}", "status": "skipped", "detail": why})
        return checks
    try:
        scope: dict = {}
        exec(compile(defn["reference"], f"<{name}>", "exec"), scope)  # noqa: S102 - the reference under test
        result = scope["run"](*inputs)
        results = result if isinstance(result, tuple) else (result,)
        bad = [i for i, r in enumerate(results) if r.is_floating_point() and not torch.isfinite(r.float()).all()]
        if len(results) != len(defn["outputs"]):
            raise ValueError(f"run returned {len(results)} outputs, the definition declares {len(defn['outputs'])}")
        if bad:
            raise ValueError(f"non-finite values in output {bad}")
        checks.append({"name": f"reference:{name}", "status": "passed",
                       "detail": f"ran on CPU in {time.monotonic() - start:.2f}s",
                       "metrics": {"shapes": [list(r.shape) for r in results]}})
    except Exception as exc:  # noqa: BLE001
        checks.append({"name": f"reference:{name}", "status": "failed", "detail": f"{type(exc).__name__}: {exc}"[:500]})
    return checks


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    checks = []
    for path in spec.get("definitions", []):
        checks += check_definition(json.loads(open(f"{spec['workspace']}/{path}").read()), spec["workspace"])
    print(json.dumps({"checks": checks, "timings": {}}))


if __name__ == "__main__":
    main(sys.argv[1])
