"""The docker backend passes a GPU's or NPU's device nodes only when requested and present; nothing else
in the container's lockdown changes (no engine needed: the arguments of `containers.create` are checked)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from sandboxes.base import Limits, Mount
from sandboxes.docker import DockerSandbox, device_args


def _host(nodes: dict[str, dict[str, int]]):
    """exists/listdir/stat over a fake /dev: {dir: {node name: gid}}."""
    def exists(path):
        return path in nodes

    def listdir(path):
        return sorted(nodes[path])

    def stat(path):
        d, name = os.path.split(path)
        return SimpleNamespace(st_gid=nodes[d][name])

    return dict(exists=exists, listdir=listdir, stat=stat)


GPU_HOST = _host({"/dev/dri": {"card0": 44, "renderD128": 109, "renderD129": 109}})
BOTH_HOST = _host({"/dev/dri": {"card0": 44, "renderD128": 109}, "/dev/accel": {"accel0": 110}})


def test_requested_gpu_present_passes_dri_and_the_render_group():
    assert device_args(("GPU",), **GPU_HOST) == {"devices": ["/dev/dri:/dev/dri:rwm"], "group_add": ["109"]}


def test_requested_npu_present_passes_accel():
    assert device_args(("NPU",), **BOTH_HOST) == {"devices": ["/dev/accel:/dev/accel:rwm"], "group_add": ["110"]}
    both = device_args(("GPU", "NPU"), **BOTH_HOST)
    assert both == {"devices": ["/dev/dri:/dev/dri:rwm", "/dev/accel:/dev/accel:rwm"], "group_add": ["109", "110"]}


def test_nothing_passed_when_not_requested_or_absent():
    assert device_args((), **BOTH_HOST) == {}
    assert device_args(("CPU",), **BOTH_HOST) == {}
    assert device_args(("NPU",), **GPU_HOST) == {}  # requested, absent: no /dev/accel
    assert device_args(("TPU",), **BOTH_HOST) == {}


def _spec(devices, monkeypatch, tmp_path: Path) -> dict:
    import sandboxes.docker as docker_mod

    monkeypatch.setattr(docker_mod, "device_args", lambda requested: device_args(requested, **BOTH_HOST))
    box = DockerSandbox.__new__(DockerSandbox)  # no engine: only the create arguments are under test
    box.image, box.user, box.devices = "img:tag", "1000:1000", tuple(devices)
    out = Mount(tmp_path, "/out", read_only=False)
    return box.container_spec(["python", "-c", "1"], [out], {"PATH": "/usr/bin"}, out, Limits())


def test_lockdown_is_unchanged_with_devices(monkeypatch, tmp_path):
    plain = _spec((), monkeypatch, tmp_path)
    gpu = _spec(("GPU",), monkeypatch, tmp_path)
    assert "devices" not in plain and "group_add" not in plain
    assert gpu.pop("devices") == ["/dev/dri:/dev/dri:rwm"] and gpu.pop("group_add") == ["109"]
    assert repr(gpu) == repr(plain)  # every other argument, mounts and limits included, is identical
    assert plain["network_mode"] == "none" and plain["cap_drop"] == ["ALL"] and plain["read_only"] is True
    assert plain["security_opt"] == ["no-new-privileges"] and plain["user"] == "1000:1000"
