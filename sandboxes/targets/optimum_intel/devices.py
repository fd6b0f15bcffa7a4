"""Where a verification job runs: the host's numerics-relevant facts and which OpenVINO devices to use.

Runs inside the sandbox (stdlib + openvino only). CPU is always measured; GPU and NPU only where the
plugin reports them, otherwise their rows are skipped with the reason, never passed.
"""

from __future__ import annotations

import platform
from pathlib import Path

KNOWN = ("CPU", "GPU", "NPU")
# ISA features that change what OpenVINO's CPU plugin computes in: bf16 by default with these present.
NUMERICS_FLAGS = ("avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "avx512_fp16", "avx512_vnni", "avx2")


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    model, flags = platform.processor() or "", set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu_model": model or "unknown", "isa": [f for f in NUMERICS_FLAGS if f in flags]}


def available(core) -> list[str]:
    """Device families the plugins report ("GPU.0" and "GPU.1" are both GPU)."""
    return sorted({d.split(".")[0] for d in core.available_devices})


def plan(requested: list[str] | None, reported: list[str]) -> list[dict]:
    """One entry per device: {"device", "run": bool, "reason"}. `requested` None: every known device,
    so the ones that are absent still show up as skipped rows."""
    wanted = [d.upper() for d in (requested or KNOWN)]
    if "CPU" not in wanted:
        wanted.insert(0, "CPU")  # the reference device: always measured
    out = []
    for dev in dict.fromkeys(wanted):
        if dev not in KNOWN:
            out.append({"device": dev, "run": False, "reason": f"unknown device {dev} (known: {', '.join(KNOWN)})"})
        elif dev in reported:
            out.append({"device": dev, "run": True, "reason": ""})
        else:
            out.append({"device": dev, "run": False,
                        "reason": f"OpenVINO reports no {dev} here (available: {', '.join(reported) or 'none'})"})
    return out


def describe(core, devices: list[dict]) -> dict:
    """What the report says about where it ran."""
    import openvino as ov

    info = {**cpu_facts(), "openvino": ov.get_version(), "devices": {}}
    for d in devices:
        if not d["run"]:
            continue
        try:
            info["devices"][d["device"]] = {
                "name": str(core.get_property(d["device"], "FULL_DEVICE_NAME")),
                "default_precision": type_name(core.get_property(d["device"], "INFERENCE_PRECISION_HINT")),
            }
        except Exception as exc:  # a plugin that answers available_devices but not its properties
            info["devices"][d["device"]] = {"error": str(exc)[:200]}
    return info


def type_name(t) -> str:
    """An OpenVINO element type as its short name (bf16, f32), whatever object the property returned."""
    return t.get_type_name() if hasattr(t, "get_type_name") else str(t)


def npu_static(model, batch: int, length: int):
    """Static shapes for NPU, as optimum-intel's OVBaseModel._reshape sets them for a fixed batch and
    sequence length: dim 0 is the batch, dim 1 the sequence, beam_idx only has the batch."""
    shapes = {}
    for inp in model.inputs:
        shape = inp.get_partial_shape()
        name = inp.get_any_name()
        shape[0] = batch
        if shape.rank.get_length() > 1 and not name.startswith("beam_idx"):
            shape[1] = length
        shapes[inp] = shape
    model.reshape(shapes)
    return model
