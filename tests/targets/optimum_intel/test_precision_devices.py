"""Which devices a verification uses, what it says about the host, and NPU's static shapes."""

from __future__ import annotations

import numpy as np

from sandboxes.targets.optimum_intel import devices


def test_cpu_always_runs_and_absent_accelerators_are_skipped_with_the_reason():
    plan = {d["device"]: d for d in devices.plan(None, ["CPU"])}
    assert plan["CPU"]["run"] is True
    for dev in ("GPU", "NPU"):
        assert plan[dev]["run"] is False and plan[dev]["reason"] == f"OpenVINO reports no {dev} here (available: CPU)"


def test_requested_devices_are_honoured_and_cpu_added():
    assert [(d["device"], d["run"]) for d in devices.plan(["gpu"], ["CPU", "GPU"])] == [("CPU", True), ("GPU", True)]
    assert [d["device"] for d in devices.plan(["CPU"], ["CPU", "GPU"])] == ["CPU"]
    [cpu, tpu] = devices.plan(["TPU"], ["CPU"])
    assert cpu["run"] and not tpu["run"] and "unknown device TPU" in tpu["reason"]


def test_available_folds_numbered_devices():
    class Core:
        available_devices = ["CPU", "GPU.0", "GPU.1"]

    assert devices.available(Core()) == ["CPU", "GPU"]


def test_cpu_facts_name_the_model_and_numerics_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8 avx512_vnni\n")
    facts = devices.cpu_facts(info)
    assert facts["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert facts["isa"] == ["avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "avx512_vnni", "avx2"]
    assert devices.cpu_facts(tmp_path / "missing")["isa"] == []


def test_npu_static_makes_every_input_static_and_still_compiles():
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    beam = ops.parameter([-1], ov.Type.i32, name="beam_idx")
    out = ops.add(ops.add(ids, mask), ops.convert(ops.reduce_sum(beam, [0]), ov.Type.i64))
    model = ov.Model([out], [ids, mask, beam], "toy")
    devices.npu_static(model, 1, 64)
    shapes = {i.get_any_name(): i.get_partial_shape() for i in model.inputs}
    assert all(s.is_static for s in shapes.values())
    assert shapes["input_ids"].to_shape() == [1, 64] and shapes["beam_idx"].to_shape() == [1]
    compiled = ov.Core().compile_model(model, "CPU")
    res = compiled({"input_ids": np.ones((1, 64), np.int64), "attention_mask": np.ones((1, 64), np.int64),
                    "beam_idx": np.zeros(1, np.int32)})
    assert res[0].shape == (1, 64)
