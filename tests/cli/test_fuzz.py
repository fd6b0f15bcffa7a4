"""Fuzz over the CLI's inputs: every generated bad input gets one line on stderr, exit 2, no traceback, and
the data dir (with earlier state in it) is left exactly as it was.

A seeded generator (CLI_FUZZ_SEED / CLI_FUZZ_CASES to explore further) plus a fixed corpus of the hostile
cases the security review found. Every generated input is bad by construction; a control test checks that
the same inputs made good get past the checks, so the refusals are not an artefact of the harness.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.fakes.cli_contract import clean_env, invoke, other_repo, snapshot, target_repo

SEED = int(os.environ.get("CLI_FUZZ_SEED", "20261206"))
CASES = int(os.environ.get("CLI_FUZZ_CASES", "160"))
HOSTILE = ["\n", "\t", "\r", "\x1b[31m", "\x7f", "é", "а", "ｃ", "\u200b", "[/red]", "[bold]", "..", "../",
           "$HOME", "~nobody-here/", "*", "?", " ", "\\", ":", "-", "\u202e"]
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789_"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs to point the CLI at, and a data dir that already holds a run."""
    root = tmp_path_factory.mktemp("fuzz")
    w = {"root": root, "upstream": target_repo(root / "optimum-intel"), "other": other_repo(root / "other")}
    (root / "plain").mkdir()
    (root / "a-file").write_text("x")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe.json")
    data = root / "data"
    (data / "jobs" / "optimum-intel-cwm-0123456789ab").mkdir(parents=True)
    (data / "jobs" / "optimum-intel-cwm-0123456789ab" / "report.json").write_text('{"outcome": "pr"}')
    (root / "report.json").write_text('{"outcome": "OUTSIDE THE DATA DIR"}')
    w["data"] = data
    return w


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    clean_env(monkeypatch)


@pytest.fixture
def no_graph(monkeypatch):
    """A bad input that got through would start a whole run: stop it at the graph, loudly."""
    import agent.graph.run

    def reached(*a, **k):
        raise AssertionError("a bad input reached the graph")

    monkeypatch.setattr(agent.graph.run, "make_deps", reached)
    monkeypatch.setattr(agent.graph.run, "drive", reached)


def _word(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice(ALNUM) for _ in range(rng.randint(1, n)))


def _spoil(rng: random.Random, text: str) -> str:
    """`text` with a hostile piece put somewhere in it (never one a model_type may hold: `.`, `-`)."""
    at = rng.randint(0, len(text))
    return text[:at] + rng.choice([h for h in HOSTILE if h not in ("..", "-")]) + text[at:]


def _bad_config(rng: random.Random, root: Path, i: int) -> Path:
    """A config.json that breaks exactly one rule (or is not JSON at all)."""
    good = {"model_type": "cwm", "hidden_size": 64, "num_hidden_layers": 2, "architectures": ["CwmForCausalLM"]}
    kind = rng.choice(["deep", "model_type", "size", "archs", "shape", "text", "bytes", "big"])
    if kind == "deep":
        depth = rng.choice([33, 200, 5_000, 100_000])
        body = json.dumps(good)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    elif kind == "model_type":
        mt = rng.choice([_spoil(rng, "cwm"), "", "x" * 65, 7, None, ["cwm"], "a/b", "_cwm", "cwm\n"])
        body = json.dumps({**good, "model_type": mt})
    elif kind == "size":
        key = rng.choice(["hidden_size", "num_hidden_layers", "vocab_size", "num_attention_heads"])
        body = json.dumps({**good, key: rng.choice([0, -1, 1.5, "64", True, [64], {"a": 1}])})
    elif kind == "archs":
        body = json.dumps({**good, "architectures": rng.choice(["Cwm", [1], [None], {"a": "b"}])})
    elif kind == "shape":
        body = json.dumps(rng.choice([[good], "cwm", 3, None, {"text_config": "x", **good}]))
    elif kind == "text":
        cut = json.dumps(good)[: rng.randint(0, 20)]  # never the closing brace: not JSON, whatever follows
        body = rng.choice([cut, cut + "{", cut + ",,", "\ufeff" + json.dumps(good), json.dumps(good) + "x"])
    elif kind == "bytes":
        path = root / f"cfg-{i}.json"
        path.write_bytes(b'{"model_type": "cwm", "x": "\xff\xfe"}')
        return path
    else:
        body = json.dumps({**good, "pad": "x" * (2 * 1024 * 1024 + 10)})
    path = root / f"cfg-{i}.json"
    path.write_text(body, encoding="utf-8")
    return path


def _case(rng: random.Random, w: dict, i: int) -> list[str]:
    """One bad invocation; the data dir is always given so the test can watch it."""
    root, up, data = w["root"], str(w["upstream"]), str(w["data"])
    kind = rng.choice(["model", "config", "data_dir", "ref", "repo", "thread"])
    if kind == "model":
        model = rng.choice([_spoil(rng, _word(rng)), _spoil(rng, f"{_word(rng)}/{_word(rng)}"),
                            str(root / _word(rng)) + ".json", "x" * rng.choice([300, 5000]),
                            str(root / "a-file" / "config.json"), str(root / "zero.json"), str(root / "pipe.json"),
                            str(root / "dangling"), str(root / "plain"), " "])
        return ["run", model, "--repo", up, "--data-dir", data]
    if kind == "config":
        return ["run", str(_bad_config(rng, root, i)), "--repo", up, "--data-dir", data]
    if kind == "data_dir":
        # (a dangling symlink is not here: the directory it names can be made, so it is good input)
        dd = rng.choice([root / "a-file", root / "a-file" / _word(rng), Path("/proc") / _word(rng),
                         Path("/sys") / _word(rng), Path("/proc"), root / "zero.json" / _word(rng)])
        return ["run", "cwm", "--repo", up, "--data-dir", str(dd)]
    if kind == "ref":
        ref = rng.choice([_spoil(rng, _word(rng)), f"nx-{_word(rng)}", "".join(rng.choice("0123456789abcdef")
                          for _ in range(40)), f"main~{rng.randint(5, 999)}", "-" + _word(rng), f"main..{_word(rng)}"])
        return ["run", "cwm", "--repo", up, "--ref", ref, "--data-dir", data]
    if kind == "repo":
        repo = rng.choice([str(root / "plain"), str(root / "a-file"), str(w["other"]), str(root / _word(rng)),
                           f"http://127.0.0.1:9/{_word(rng)}.git", f"file:///nonexistent/{_word(rng)}",
                           "-" + _word(rng), _spoil(rng, up)])
        return ["run", "cwm", "--repo", repo, "--data-dir", data]
    thread = rng.choice(["..", "../..", "/" + _word(rng), f"{_word(rng)}/{_word(rng)}", _spoil(rng, "..x"),
                         "", "." + _word(rng), _spoil(rng, f"optimum-intel-{_word(rng)}")])
    if "/" not in thread and ".." not in thread and thread[:1].isalnum() and thread.isascii() \
            and all(c in ALNUM + "-." for c in thread):
        thread = "../" + thread  # the spoiling picked a harmless piece: make it a traversal
    return [rng.choice(["show", "resume", "trajectory"]), thread, "--data-dir", data]


CORPUS = [  # the review's findings, verbatim where they are inputs
    ["run", "cwm", "--data-dir", "{root}/a-file"], ["run", "cwm", "--data-dir", "/proc"],
    ["run", "cwm", "--data-dir", "/sys"], ["run", "{root}/deep.json", "--repo", "{up}", "--data-dir", "{data}"],
    ["run", "cwm", "--repo", "{root}/plain", "--data-dir", "{data}"],
    ["run", "cwm", "--repo", "{other}", "--data-dir", "{data}"],
    ["run", "cwm", "--repo", "{up}", "--ref", "no-such-ref", "--data-dir", "{data}"],
    ["run", "{root}/newline.json", "--repo", "{up}", "--data-dir", "{data}"],
    ["run", "{root}/cyrillic.json", "--repo", "{up}", "--data-dir", "{data}"],
    ["show", "../..", "--data-dir", "{data}"], ["show", "../../..", "--data-dir", "{data}"],
    ["run", "{root}/zero.json", "--repo", "{up}", "--data-dir", "{data}"],
    ["run", "{root}/pipe.json", "--repo", "{up}", "--data-dir", "{data}"],
    ["show", "x", "--data-dir", "{data}/jobs/optimum-intel-cwm-0123456789ab/report.json"],
]


def _check(args: list[str], w: dict) -> str:
    before = snapshot(w["data"])
    got = invoke(args)
    problem = got.refused()
    if not problem and snapshot(w["data"]) != before:
        problem = "wrote to the data dir"
    if not problem and "OUTSIDE" in got.stdout + got.stderr:
        problem = "read a report outside the data dir"
    return f"{problem}\n    args {args!r}\n    stderr {got.stderr[-300:]!r}" if problem else ""


def test_the_review_corpus(world, no_graph):
    root = world["root"]
    (root / "deep.json").write_text('{"model_type": "cwm", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (root / "newline.json").write_text(json.dumps({"model_type": "cwm\n"}))
    (root / "cyrillic.json").write_text(json.dumps({"model_type": "cwmа"}))
    fill = {"root": str(root), "up": str(world["upstream"]), "other": str(world["other"]), "data": str(world["data"])}
    failures = [f for args in CORPUS if (f := _check([a.format(**fill) for a in args], world))]
    assert not failures, "\n".join(failures)


def test_generated_bad_inputs(world, no_graph):
    rng = random.Random(SEED)
    failures = [f for i in range(CASES) if (f := _check(_case(rng, world, i), world))]
    assert not failures, f"seed {SEED}: {len(failures)} of {CASES} broke the contract\n" + "\n".join(failures[:15])


def test_the_same_inputs_made_good_get_past_the_checks(world, monkeypatch):
    """Control: the harness can see a run start, so the refusals above are the checks speaking."""
    import git

    import agent.graph.run

    monkeypatch.setattr(agent.graph.run, "make_deps", lambda *a, **k: None)
    monkeypatch.setattr(agent.graph.run, "drive", lambda *a, **k: ({"outcome": "pr", "thread_id": "t"}, "started"))
    root, up = world["root"], str(world["upstream"])
    head = git.Repo(up).head.commit.hexsha
    good_cfg = root / "good.json"
    good_cfg.write_text(json.dumps({"model_type": "cwm"}))
    for extra in (["cwm"], [str(good_cfg)], ["cwm", "--ref", "main"], ["cwm", "--ref", head[:12]]):
        data = root / f"good-data-{len(extra)}-{extra[-1][-4:]}"
        got = invoke(["run", *extra[:1], "--repo", up, *extra[1:], "--data-dir", str(data)])
        assert got.code == 0, got.stderr[-800:]
        assert (data / "jobs").is_dir()
