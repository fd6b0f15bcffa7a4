"""A third target is its folders plus one registry line: nothing else in the tree changes.

The test copies the project, adds a toy target the way README's "Add a target" says (its package,
its sandbox folder with an in-sandbox job, its prompts, one REGISTRY line), and drives the copy as
a user would: `onboard run`, `onboard nightly`, and a chat-ops request to the service. The toy
framework is a git repository whose registry is a text file; verification runs in the real local
sandbox. Afterwards `git status` of the copy must show the new folders and the registry line, only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300

TARGET = '''"""toy: a framework whose registry is registry.txt, one model type per line."""

import os

from tools.targets.base import (REPO_ROOT, Applied, BaseTarget, Candidate, Check, Plan, PRMeta, SandboxEnv,
                                VerifyReport)
from tools.targets.sandbox_job import run_job


class Target(BaseTarget):
    key = "toy-target"
    default_repo = os.environ.get("TOY_REPO", "https://example.invalid/toy.git")
    env = SandboxEnv(name="toy-target", dir=REPO_ROOT / "sandboxes" / "targets" / "toy_target")
    marker = "registry.txt"
    needs_tiny_model = False
    done_when = "registry.txt lists the model type exactly once"

    def supported_types(self, workspace):
        return set((workspace / "registry.txt").read_text().split())

    def plan(self, analysis, workspace):
        return Plan(situation="S1", files=["registry.txt"], checklist=["add one line"])

    def candidates(self, analysis, workspace, limit):
        return [Candidate(id="line", base="registry.txt")][:limit]

    def apply(self, candidate, analysis, workspace, ctx):
        path = workspace / "registry.txt"
        path.write_text(path.read_text() + analysis["model_type"] + "\\n")
        return Applied(files=["registry.txt"])

    def verify(self, candidate, analysis, workspace, ctx, sandbox, run_tests):
        out = run_job(sandbox, self.env.job_path, workspace, ctx, {"phase": "check"}, ctx.timeout_s)
        checks = [Check(**{**c, "stage": "compare"}) for c in out["checks"]]
        return VerifyReport.from_checks(checks, score=0.0 if all(c.status == "passed" for c in checks) else 1.0,
                                        score_label="missing lines")

    def pr_meta(self, analysis, candidate, workspace, report=None):
        return PRMeta(title=f"Add {analysis['model_type']}", key=analysis["model_type"],
                      display_name=analysis["model_type"])
'''
JOB = '''import json, sys
spec = json.load(open(sys.argv[1]))
lines = open(spec["workspace"] + "/registry.txt").read().split()
n = lines.count(spec["model_type"])
print(json.dumps({"checks": [{"name": "listed_once", "status": "passed" if n == 1 else "failed",
                              "detail": f"{n} line(s)"}]}))
'''
SERVICE = '''import sys, time
from fastapi.testclient import TestClient
from agent.service.app import build_service, create_app
from agent.service.settings import ServiceSettings
from agent.settings import Settings
from tools.forge.github import GitHubConfig
settings = Settings(data_dir=sys.argv[1], sandbox="local")
svc = ServiceSettings(api_token="t0ken-for-the-test", concurrency=1, allow_local_sandbox=True)
service = build_service(settings, svc, GitHubConfig())  # no GitHub: the local forge
service.pool.poll_s = 0.1
with TestClient(create_app(service)) as client:
    r = client.post("/chatops", json={"text": "/onboard seed_oss --target toy-target --approve", "request_id": "x"},
                    headers={"Authorization": "Bearer t0ken-for-the-test"}).json()
    deadline = time.time() + 240
    while time.time() < deadline:
        job = service.queue.get(r["job"]["id"])
        if job.status not in ("queued", "running", "authorizing"):
            break
        time.sleep(0.2)
print(job.status, job.outcome)
'''


def _sh(cmd, cwd, env=None, timeout=TIMEOUT):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("third")
    copy = tmp / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for top in ("agent", "tools", "sandboxes", "prompts"):
        shutil.copytree(ROOT / top, copy / top, ignore=ignore)
    shutil.copy2(ROOT / "requirements.lock", copy / "requirements.lock")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _sh([*git, "init", "-q"], copy)
    _sh([*git, "add", "-A"], copy)
    _sh([*git, "commit", "-qm", "as shipped"], copy)
    # The new target, exactly as README's "Add a target" lists it (tests/targets/toy_target/ would be the fourth).
    files = {"tools/targets/toy_target/__init__.py": TARGET, "sandboxes/targets/toy_target/verify.py": JOB,
             "sandboxes/targets/toy_target/Dockerfile": "ARG BASE=onboarder-optimum-intel:latest\nFROM ${BASE}\n",
             "prompts/targets/toy_target/playbook.md.j2": "Add `{{ model_type }}` as one line of registry.txt.\n",
             "prompts/targets/toy_target/pr_intro.md.j2": "## What this adds\n\n`{{ model_type }}` in registry.txt.\n"}
    for rel, text in files.items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text(text)
    registry = copy / "tools/targets/__init__.py"
    text = registry.read_text()
    line = '    "flashinfer-bench": "tools.targets.flashinfer_bench:Target",\n'
    assert line in text
    registry.write_text(text.replace(line, line + '    "toy-target": "tools.targets.toy_target:Target",\n'))
    fw = tmp / "toyfw"
    fw.mkdir()
    (fw / "registry.txt").write_text("llama\n")
    _sh([*git, "init", "-q", "-b", "main"], fw)
    _sh([*git, "add", "-A"], fw)
    _sh([*git, "commit", "-qm", "base"], fw)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("ONBOARD_DATA_DIR", None)
    return copy, fw, env, tmp


def _onboard(project, *args):
    copy, _, env, _ = project
    return _sh([sys.executable, "-c", "from agent.cli.main import main; main()", *args], copy, env)


def test_run_publishes_without_a_tiny_model(project):
    copy, fw, _, tmp = project
    res = _onboard(project, "run", "cwm", "--target", "toy-target", "--repo", str(fw), "--data-dir",
                   str(tmp / "run"), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    state = json.loads(res.stdout)
    report = json.loads((tmp / "run" / "jobs" / state["thread_id"] / "report.json").read_text())
    assert report["outcome"] == "pr" and report["target"]["key"] == "toy-target"
    assert "tiny" not in report["timings"]  # needs_tiny_model = False: the node never ran
    assert [c["name"] for c in report["verification"]["checks"]] == ["listed_once"]


def test_nightly_sweeps_the_new_targets_gap(project):
    copy, fw, _, tmp = project
    res = _onboard(project, "nightly", "--target", "toy-target", "--repo", str(fw), "--only", "cwm,seed_oss",
                   "--jobs", "1", "--since", "0", "--data-dir", str(tmp / "nightly"), "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(Path(json.loads(res.stdout)["paths"]["json"]).read_text())
    rows = {r["model_type"]: r["status"] for r in summary["rows"]}
    assert rows == {"cwm": "pr", "seed_oss": "pr"}


def test_the_service_runs_a_chat_request_for_the_new_target(project):
    copy, _, env, tmp = project
    # Chat requests use the target's default repository: the toy target reads it from TOY_REPO.
    res = _sh([sys.executable, "-c", SERVICE, str(tmp / "svc")], copy, {**env, "TOY_REPO": str(project[1])})
    assert res.returncode == 0, res.stderr[-2000:]
    status, outcome = res.stdout.split()[-2:]
    assert (status, outcome) == ("done", "pr"), res.stderr[-2000:]


def test_nothing_else_in_the_tree_changed(project):
    copy = project[0]
    changed = sorted(_sh(["git", "status", "--porcelain", "--untracked-files=all"], copy).stdout.splitlines())
    assert changed == [" M tools/targets/__init__.py",
                       "?? prompts/targets/toy_target/playbook.md.j2", "?? prompts/targets/toy_target/pr_intro.md.j2",
                       "?? sandboxes/targets/toy_target/Dockerfile", "?? sandboxes/targets/toy_target/verify.py",
                       "?? tools/targets/toy_target/__init__.py"]
