"""The checks of a models.ts entry: its semantics against the config, and `tsc --strict` with the zod schema.

The semantic check reads the entry back from the file as it stands, so it judges an implementer's edits
as well as ours; the compiler proves the file against the repository's own schema.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.targets.flashinfer_bench import model as fbm
from tools.targets.base import Check
from tools.targets.flashinfer_bench.models_ts import read_entries


def semantic_problems(text: str, entry_id: str, a: dict, known: set[str]) -> list[str]:
    """Everything wrong with the entry `entry_id` as it stands in the file (empty when it is sound)."""
    try:
        entries = read_entries(text, strict=True)
    except ValueError as exc:
        return [f"models.ts does not parse: {exc}"]
    ids = [e.get("id") for e in entries]
    if ids.count(entry_id) != 1:
        return [f"expected one entry {entry_id!r}, found {ids.count(entry_id)}"]
    entry = entries[ids.index(entry_id)]
    mods = entry.get("modules") or {}
    out = []
    for name, mod in mods.items():
        if mod.get("type") not in ("block", "layer"):
            out.append(f"{name}: type {mod.get('type')!r} is neither block nor layer")
        if mod.get("parent") is not None and mod["parent"] not in mods:
            out.append(f"{name}: parent {mod['parent']!r} does not exist")
        if not isinstance(mod.get("count"), int) or mod["count"] < 1:
            out.append(f"{name}: count {mod.get('count')!r} is not a positive integer")
        for d in mod.get("definitions", []):
            if d not in known:
                out.append(f"{name}: definition {d} is neither in the dataset nor in this change")
    counts = fbm.layer_counts(a)
    decoder = [n for n in mods if n.endswith("DecoderLayer")]
    if len(decoder) != 1 or mods[decoder[0]]["count"] != counts["layers"]:
        out.append(f"decoder layer count {[mods[n]['count'] for n in decoder]} != config {counts['layers']}")
    for kind, block in (("moe", "moe"), ("dense", "mlp_dense")):
        if block in mods and mods[block]["count"] != counts[kind]:
            out.append(f"{block} count {mods[block]['count']} != config {kind} layers {counts[kind]}")
    if counts["moe"] and "moe" not in mods:
        out.append(f"config has {counts['moe']} MoE layers but the entry has no moe block")
    if counts["moe"] and counts["dense"] and "mlp_dense" not in mods:
        out.append(f"config has {counts['dense']} dense feed-forward layers but the entry has no mlp_dense block")
    return out


IMAGE_NODE, IMAGE_NODE_MODULES = "/usr/local/bin/node", "/opt/node_modules"


def tsc_check(workspace: Path, node_modules: Path, work_dir: Path, sandbox) -> Check:
    import shutil

    from sandboxes.base import Mount

    m_out = Mount(work_dir.resolve(), "/out", False)
    if sandbox.name == "docker":
        # The target's image carries node and the packages (sandboxes/targets/flashinfer_bench/Dockerfile).
        return _tsc_run(sandbox, IMAGE_NODE, IMAGE_NODE_MODULES, workspace, work_dir, [], m_out)
    node = shutil.which("node")
    tsc = node_modules / "typescript" / "bin" / "tsc"
    if not node or not tsc.is_file() or not (node_modules / "zod").is_dir():
        return Check(name="tsc", status="skipped",
                     detail=f"needs node ({node or 'missing'}) and typescript + zod in {node_modules} "
                            f"(npm install --prefix {node_modules.parent} typescript zod@3)")
    m_nm = Mount(node_modules.resolve(), "/node_modules", True)
    return _tsc_run(sandbox, node, sandbox.inside(m_nm), workspace, work_dir, [m_nm], m_out)


def _tsc_run(sandbox, node: str, node_modules: str, workspace: Path, work_dir: Path, extra: list, m_out) -> Check:
    from sandboxes.base import Limits, Mount
    from sandboxes.output import write_host_file

    work_dir.mkdir(parents=True, exist_ok=True)
    m_ws = Mount(workspace.resolve(), "/workspace", True)
    web = f"{sandbox.inside(m_ws)}/web/apps/web"
    config = {"compilerOptions": {"strict": True, "noEmit": True, "target": "es2020", "module": "esnext",
                                  "moduleResolution": "bundler", "skipLibCheck": True, "types": [],
                                  "paths": {"@/*": [f"{web}/*"], "zod": [f"{node_modules}/zod"]}},
              "files": [f"{web}/data/models.ts"]}
    write_host_file(work_dir / "tsconfig.fib.json", json.dumps(config, indent=2))
    res = sandbox.run([node, f"{node_modules}/typescript/bin/tsc", "-p",
                       f"{sandbox.inside(m_out)}/tsconfig.fib.json"], mounts=[m_ws, *extra, m_out],
                      workdir=m_out, limits=Limits(timeout_s=300))
    write_host_file(work_dir / "tsc.log", res.stdout + res.stderr)
    if res.status == "ok":
        return Check(name="tsc", status="passed", detail="tsc --strict: no errors in models.ts with the zod schema",
                     metrics={"seconds": round(res.duration_s, 2)})
    errors = [line for line in (res.stdout + res.stderr).splitlines() if "error" in line][:5]
    return Check(name="tsc", status="failed", detail=" | ".join(errors)[:600] or f"tsc {res.status}: {res.reason}")
