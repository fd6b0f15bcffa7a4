"""Each hostile input the security review found, against the contract: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.fakes.cli_contract import (clean_env, invoke, invoke_process, other_repo, snapshot,
                                      target_repo)


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    clean_env(monkeypatch)


@pytest.fixture
def upstream(tmp_path):
    return target_repo(tmp_path / "optimum-intel")


@pytest.fixture
def data(tmp_path):
    """A data dir with earlier state in it: a refusal must leave it exactly as it was."""
    d = tmp_path / "data"
    (d / "jobs" / "earlier").mkdir(parents=True)
    (d / "jobs" / "earlier" / "report.json").write_text('{"outcome": "pr"}')
    return d


def refuse(args: list[str], watched: Path, *, contains: str = "") -> str:
    before = snapshot(watched)
    got = invoke(args)
    assert not got.refused(), f"{got.refused()}: {got.stderr[-600:]}"
    assert snapshot(watched) == before, "a refused command wrote to the data dir"
    assert contains in got.stderr, got.stderr
    return got.stderr


# -- the data dir ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "under-a-file", "/proc", "/sys", "/proc/new/dir"])
def test_an_unusable_data_dir_is_one_line(tmp_path, upstream, kind):
    plain = tmp_path / "plain"
    plain.write_text("x")
    dd = {"file": plain, "under-a-file": plain / "sub"}.get(kind, Path(kind))
    refuse(["run", "cwm", "--repo", str(upstream), "--data-dir", str(dd)], plain, contains=str(dd))


def test_a_read_only_data_dir_is_refused_before_anything(tmp_path, upstream):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], check=False, capture_output=True)
    try:
        if os.access(ro, os.W_OK) and not os.statvfs(ro).f_flag & os.ST_RDONLY:
            pytest.skip("cannot make a read-only mount here (needs root and mount)")
        refuse(["run", "cwm", "--repo", str(upstream), "--data-dir", str(ro / "data")], ro, contains="not writable")
    finally:
        subprocess.run(["umount", str(ro)], check=False, capture_output=True)


@pytest.fixture
def full_disk(tmp_path):
    mnt = tmp_path / "tiny-fs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a 64 KB tmpfs to stand for a full disk: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_untouched(full_disk, upstream):
    refuse(["run", "cwm", "--repo", str(upstream), "--data-dir", str(full_disk / "data")], full_disk,
           contains="KB free")


def test_an_unexpected_error_whose_log_cannot_be_written_is_still_one_line(tmp_path, monkeypatch, upstream):
    """The crash handler must not crash: a disk that fills mid-run costs the log, not a traceback."""
    import errno
    import tempfile

    import agent.graph.request

    data = tmp_path / "data"
    data.mkdir()
    (data / "logs").write_text("in the way")  # the log directory cannot be made
    (tmp_path / "no-tmp").write_text("a file, so no directory can be made under it")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "no-tmp" / "tmp"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(agent.graph.request, "prepare", full)
    got = invoke(["run", "cwm", "--repo", str(upstream), "--data-dir", str(data)])
    lines = got.stderr.splitlines()
    assert got.code == 1 and len(lines) == 1 and "Traceback" not in got.stderr, got.stderr[-800:]
    assert "No space left" in lines[0] and "traceback not saved" in lines[0]
    assert got.exception is None or isinstance(got.exception, SystemExit)


# -- state databases ---------------------------------------------------------------------------------


def test_a_corrupt_checkpoint_database_under_show_resume_and_run(data, upstream):
    (data / "checkpoints.sqlite").write_bytes(b"this is not a database" * 10)
    for args in (["show", "optimum-intel-cwm-0123456789ab"], ["resume", "optimum-intel-cwm-0123456789ab"],
                 ["run", "cwm", "--repo", str(upstream)]):
        refuse([*args, "--data-dir", str(data)], data, contains="checkpoints.sqlite")


def test_a_database_with_a_good_header_and_garbage_after_it(data):
    db = data / "checkpoints.sqlite"
    sqlite3.connect(db).execute("create table t (x)").connection.commit()
    raw = bytearray(db.read_bytes())
    raw[16:] = b"\xff" * (len(raw) - 16)
    db.write_bytes(bytes(raw))
    refuse(["show", "optimum-intel-cwm-0123456789ab", "--data-dir", str(data)], data, contains="unreadable")


def test_serve_refuses_a_corrupt_queue_before_listening(data, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served on a corrupt queue"))
    (data / "service").mkdir()
    (data / "service" / "jobs.sqlite").write_bytes(b"garbage" * 100)
    refuse(["serve", "--data-dir", str(data), "--port", "9999"], data, contains="jobs.sqlite")
    (data / "service" / "jobs.sqlite").unlink()
    (data / "checkpoints.sqlite").write_bytes(b"garbage" * 100)
    refuse(["serve", "--data-dir", str(data), "--port", "9999"], data, contains="checkpoints.sqlite")


# -- configs and model types -------------------------------------------------------------------------


def test_a_config_nested_100k_levels_deep(tmp_path, data, upstream):
    deep = tmp_path / "deep.json"
    deep.write_text('{"model_type": "cwm", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refuse(["run", str(deep), "--repo", str(upstream), "--data-dir", str(data)], data, contains="nests deeper")
    modest = tmp_path / "modest.json"  # deeper than any config, shallow enough for the JSON parser
    modest.write_text('{"model_type": "cwm", "x": ' + "[" * 200 + "]" * 200 + "}")
    refuse(["run", str(modest), "--repo", str(upstream), "--data-dir", str(data)], data, contains="nests deeper")


@pytest.mark.parametrize("model_type", ["cwm\n", "cwm\r", "cwmé", "ｃｗｍ", "cwm\u200b", "llamа"])
def test_a_config_model_type_must_be_plain_ascii(tmp_path, data, upstream, model_type):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": model_type}))
    refuse(["run", str(cfg), "--repo", str(upstream), "--data-dir", str(data)], data, contains="model_type")


@pytest.mark.parametrize("arg", ["cwm\n", "cwm\tx", "\ncwm"])
def test_a_model_argument_with_control_characters(data, upstream, arg):
    refuse(["run", arg, "--repo", str(upstream), "--data-dir", str(data)], data, contains="control characters")


def test_a_link_to_dev_zero_is_named_for_what_it_is(tmp_path, data, upstream):
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    err = refuse(["run", str(link), "--repo", str(upstream), "--data-dir", str(data)], data)
    assert "character device" in err and "no such file" not in err


def test_markup_in_the_input_is_printed_not_interpreted(data, upstream):
    refuse(["run", "[/red]x[bold]", "--repo", str(upstream), "--data-dir", str(data)], data, contains="[/red]x[bold]")


# -- repositories and refs ---------------------------------------------------------------------------


def test_a_directory_that_is_not_a_git_repository(tmp_path, data):
    plain = tmp_path / "plain"
    plain.mkdir()
    refuse(["run", "cwm", "--repo", str(plain), "--data-dir", str(data)], data, contains="not a git repository")


def test_a_git_repository_of_another_project_is_refused_before_state(tmp_path, data):
    other = other_repo(tmp_path / "other")
    refuse(["run", "cwm", "--repo", str(other), "--data-dir", str(data)], data,
           contains="not a repository of this target")


@pytest.mark.parametrize("ref", ["no-such-branch", "v9.9.9", "main~99", "0123abcd" * 5])
def test_an_unknown_ref_is_refused_before_cloning(data, upstream, ref):
    refuse(["run", "cwm", "--repo", str(upstream), "--ref", ref, "--data-dir", str(data)], data,
           contains="unknown ref")


@pytest.mark.parametrize("ref", ["--upload-pack=touch x", "main..dev", "a b", "main\n", "-", "HEAD:x"])
def test_a_ref_that_is_not_a_revision(data, upstream, ref):
    refuse(["run", "cwm", "--repo", str(upstream), "--ref", ref, "--data-dir", str(data)], data, contains="--ref")


def test_an_explicit_repository_that_cannot_be_reached_is_not_replaced(data):
    """Falling back to the package index would answer a different request than the one made."""
    refuse(["run", "cwm", "--repo", "http://127.0.0.1:9/optimum-intel.git", "--data-dir", str(data)], data,
           contains="cannot reach")


def test_a_known_ref_still_runs_to_the_workspace(tmp_path, upstream, monkeypatch):
    """The checks must not refuse good input: a branch and a commit id of the target pass them."""
    from agent.graph.request import Request, prepare
    from agent.settings import Settings

    import git

    head = git.Repo(upstream).head.commit.hexsha
    settings = Settings(data_dir=tmp_path / "data")
    for ref in ("main", head, head[:10]):
        job = prepare(Request(model="cwm", repo=str(upstream), ref=ref), settings)
        assert job.initial_state["workspace"]["base_rev"] == head


# -- thread ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("thread", ["../..", "..", ".", "../../outside", "/etc", "a/b", "x\n", ""])
def test_show_resume_and_trajectory_stay_in_the_data_dir(tmp_path, data, thread):
    (tmp_path / "report.json").write_text('{"outcome": "OUTSIDE"}')  # where ../.. from jobs/ lands
    for cmd in ("show", "resume", "trajectory"):
        err = refuse([cmd, thread, "--data-dir", str(data)], data, contains="thread id")
        assert "OUTSIDE" not in err


# -- as a user runs it -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["run", "cwm", "--data-dir", "/proc"], ["show", "../..", "--data-dir", "{data}"],
                                  ["run", "{deep}", "--data-dir", "{data}"]])
def test_through_a_real_process(tmp_path, data, args):
    (tmp_path / "report.json").write_text('{"outcome": "OUTSIDE"}')
    deep = tmp_path / "deep.json"
    deep.write_text('{"model_type": "cwm", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    args = [a.format(deep=deep, data=data) for a in args]
    before = snapshot(data)
    got = invoke_process(args)
    assert not got.refused(), f"{got.refused()}: {got.stderr[-600:]}"
    assert snapshot(data) == before and "OUTSIDE" not in got.stdout


# -- found by the fuzz test --------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["s41../x", "a--b/c", "org/-name"])
def test_a_hub_id_the_hub_itself_rejects(data, upstream, model):
    refuse(["run", model, "--repo", str(upstream), "--data-dir", str(data)], data, contains="not a Hub id")


@pytest.mark.parametrize("args", [["run", "-v"], ["run"], ["show"], ["serve", "--port", "abc"], ["nope"],
                                  ["show", "-..x"]])
def test_usage_errors_are_one_line_too(data, args):
    refuse([*args, "--data-dir", str(data)] if args[0] != "nope" else args, data)


@pytest.mark.parametrize("args", [["bench", "s1", "cwm"], ["bench", "sandbox", "--skip-job"], ["nightly"],
                                  ["tiny", "cwm", "--out", "{tmp}/out"], ["references", "cwm"]])
def test_every_command_that_writes_refuses_an_unusable_data_dir(tmp_path, args):
    refuse([a.format(tmp=tmp_path) for a in args] + ["--data-dir", "/proc"], tmp_path, contains="/proc")
