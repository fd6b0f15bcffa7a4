"""Write a derived package and its touch points into a workspace; bring patchgen's output back.

Touch points are those the repository's history shows per model: the package import in
veomni/models/transformers/__init__.py, the LoRA module map (veomni/lora/config.py), the flop counter's
dispatch (veomni/utils/count_flops.py) and the registry test's table. Each is added only where the base
package has an entry to follow; the rest is a note, never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path

from sandboxes.output import write_host_file
from tools.targets.base import Applied
from tools.targets.veomni import layout, writer

LORA = "veomni/lora/config.py"
FLOPS = "veomni/utils/count_flops.py"
REGISTRY_TEST = "tests/models/test_model_registry.py"
MAX_GENERATED = 4 * 1024 * 1024


def write_package(ws: Path, analysis: dict, d: dict) -> Applied:
    names, base, der = d["names"], d["base"], d["derived"]
    pkg, mt = names.pkg, analysis["model_type"]
    root = ws / layout.MODELS / pkg
    files, notes = [], [f"base package {base.name}: " + "; ".join(d["choice"].reasons)]

    def put(rel: str, text: str) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files.append(rel)

    rel = f"{layout.MODELS}/{pkg}"
    ex = d["experts"]
    converter = "checkpoint_tensor_converter.py" in base.extras and ex is not None
    if converter:
        src = (ws / layout.MODELS / base.name / "checkpoint_tensor_converter.py").read_text()
        text = names.rename(src)
        for a, b in der.remapped.items():
            text = text.replace(f"config.{a}", f"config.{b}")
        put(f"{rel}/checkpoint_tensor_converter.py", text)
    put(f"{rel}/__init__.py", writer.init_py(pkg, names.prefix, d["classes"],
                                             ex["path"].split(".layers.")[0] if ex else None, converter))
    put(f"{rel}/{pkg}_gpu_patch_gen_config.py", der.text)
    if ex:
        put(f"{rel}/parallel_plan.py", writer.parallel_plan_py(ex["path"], ex["params"]))
    (root / "generated").mkdir(parents=True, exist_ok=True)
    raw = d["raw"] or {}
    if raw:
        toy = f"{layout.TOYS}/{pkg}_toy"
        put(f"{toy}/config.json", writer.toy_config(raw, (analysis.get("architectures") or [f"{names.prefix}ForCausalLM"])[0]))
        put(f"{toy}/README.md", writer.toy_readme(names.prefix, f"the released `{mt}` configuration",
                                                   ex is not None))
        reg = ws / REGISTRY_TEST
        if reg.is_file() and (new := writer.add_registry_test(reg.read_text(), toy)) is not None:
            reg.write_text(new)
            files.append(REGISTRY_TEST)
    else:
        notes.append("no real config to derive a toy config from: add tests/toy_config/<model>_toy/")
    init = ws / layout.MODELS / "__init__.py"
    init.write_text(writer.add_import(init.read_text(), pkg))
    files.append(f"{layout.MODELS}/__init__.py")
    for path, why in ((LORA, "LoRA module map"), (FLOPS, "flop counter")):
        f = ws / path
        if not f.is_file():
            continue
        if path == FLOPS and der.remapped:
            notes.append(f"{why}: not wired — {base.name}'s estimator reads fields {sorted(der.remapped)} "
                         f"that {mt} names differently; port the estimator")
            continue
        new = writer.add_mapping_entry(f.read_text(), base.name, mt)
        if new is None:
            notes.append(f"{why}: {base.name} has no entry to follow; none added")
        else:
            f.write_text(new)
            files.append(path)
    notes += [f"patch dropped (HF code differs from {base.name}'s; generated file keeps HF's): {x}"
              for x in der.dropped]
    notes += [f"config field remapped: {a} -> {b}" for a, b in der.remapped.items()]
    if ex:
        notes.append("expert plan: " + ", ".join(f"{ex['path']}.{p}: Shard(0)" for p in ex["params"]))
    notes.append(f"generated/patched_modeling_{pkg}_gpu.py: made by the checkout's patchgen in the sandbox "
                 "(verify's generate phase), never written by hand")
    return Applied(files=files, notes=notes)


def copy_generated(out: Path, dest: Path, pkg: str) -> list[str]:
    """The job's generated modeling file and diff, copied into the package (regular files of the
    expected names only: the out dir is the sandbox's to write)."""
    wanted = {f"patched_modeling_{pkg}_gpu.py", f"patched_modeling_{pkg}_gpu.diff"}
    copied = []
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(wanted):
        src = out / name
        if src.is_symlink() or not src.is_file() or src.stat().st_size > MAX_GENERATED:
            continue
        write_host_file(dest / name, src.read_text())
        copied.append(name)
    return copied
