"""Building blocks for service tests: signed requests, issue events, job runners.

`ForgeRunner` stands in for the graph (which takes ~40 s a run) but publishes
through the real forge into a real git worktree, so PR upserts, pushes and
comments are the real ones. `ScriptedGraphRunner` runs the real graph with a
scripted target, for the approval interrupt and checkpoint contents.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
import zlib
from pathlib import Path
from types import SimpleNamespace

import git

from agent.graph.deps import Deps
from agent.service import github_webhook, slack
from agent.service.workers import RunResult
from tools.forge.local import branch_name
from tools.repo.workspace import RepoManager, Workspace, commit_all
from tests.fakes.scripted_target import ScriptedTarget
from tests.fakes.tiny import fake_tiny  # noqa: F401  (re-exported for the service tests)


class Killed(BaseException):
    """The process dying mid-job: no `except Exception` may catch it."""


def github_request(secret: str, event: str, payload: dict, delivery: str | None = None,
                   signature: str | None = None) -> dict:
    body = json.dumps(payload).encode()
    return {"content": body, "headers": {
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else github_webhook.sign(secret, body),
        "Content-Type": "application/json"}}


def slack_request(secret: str, form: dict, ts: float | None = None, signature: str | None = None) -> dict:
    from urllib.parse import urlencode

    body = urlencode(form).encode()
    stamp = str(int(ts if ts is not None else time.time()))
    return {"content": body, "headers": {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature if signature is not None else slack.sign(secret, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded"}}


def issue_id(repo: str, number: int) -> int:
    """GitHub's global issue id (not the number): stable per issue, as in real payloads."""
    return 10**6 + zlib.crc32(f"{repo}#{number}".encode())


_COMMENT_IDS = itertools.count(5_000_001)


def labeled(repo: str, number: int, text: str, sender: str = "alice", label: str = "onboard") -> dict:
    return {"action": "labeled", "label": {"name": label},
            "issue": {"id": issue_id(repo, number), "number": number, "title": text, "body": "",
                      "labels": [{"name": label}]},
            "repository": {"full_name": repo}, "sender": {"login": sender, "type": "User"}}


def commented(repo: str, number: int, text: str, sender: str, comment_id: int | None = None) -> dict:
    """A new comment: each call is a different comment (its own id) unless `comment_id` is given."""
    return {"action": "created", "issue": {"id": issue_id(repo, number), "number": number, "title": "t", "body": ""},
            "comment": {"id": comment_id or next(_COMMENT_IDS), "body": text,
                        "user": {"login": sender, "type": "User"}},
            "repository": {"full_name": repo}, "sender": {"login": sender, "type": "User"}}


def upstream(tmp: Path) -> tuple[Path, str]:
    up = tmp / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "registry.py").write_text("REGISTERED = None\n")
    return up, commit_all(repo, "base")


class ForgeRunner:
    """Stages, then a real publish; `die_after_publish` kills the first run right after its PR."""

    def __init__(self, forge, tmp: Path, die_after_publish: bool = False):
        self.forge, self.tmp, self.die_after_publish = forge, tmp, die_after_publish
        self.up, self.base = upstream(tmp)
        self.repos = RepoManager(tmp / "cache")
        self.runs: list[tuple[str, dict | None]] = []

    def run(self, job, resume, on_stage, on_thread) -> RunResult:
        self.runs.append((job.id, resume))
        model, target = job.request["model"], job.request["target"]
        tid = f"{target}-{model}-scripted"
        on_thread(tid)
        for stage in ("intake", "analyze", "verify"):
            on_stage(stage)
        mode = job.request.get("publish", "auto")
        if mode == "dry_run":
            return RunResult(status="done", thread_id=tid, outcome="dry_run", message="verified; dry run")
        if mode == "approval" and resume is None:
            return RunResult(status="awaiting_approval", thread_id=tid, message="verified")
        if resume is not None and not resume.get("approved"):
            return RunResult(status="done", thread_id=tid, outcome="rejected", message="declined")
        wt = self.repos.worktree(self.repos.mirror(str(self.up)), self.base, self.tmp / "ws" / job.id)
        (wt / "registry.py").write_text(f"REGISTERED = {model!r}\n")
        record = self.forge.publish(worktree=wt, base_rev=self.base, branch=branch_name(target, model),
                                    title=f"Add {model}", body=f"Verified {model}: parity 1e-7", target=target,
                                    model_type=model, thread_id=tid, verification={"logits_parity": "passed"})
        on_stage("publish")
        if self.die_after_publish:
            self.die_after_publish = False
            raise Killed()
        return RunResult(status="done", thread_id=tid, outcome="pr", message="published", pr_url=record.url)


def scripted_target() -> ScriptedTarget:
    """A target whose only candidate passes: the graph runs in about a second."""
    return ScriptedTarget(bases=("llama",), key="optimum-intel")


class ScriptedGraphRunner:
    """The real graph, checkpointer and `drive`, with the scripted target in place of a framework."""

    def __init__(self, settings, forge, tmp: Path):
        self.settings, self.forge, self.tmp = settings, forge, tmp
        self.up, self.base = upstream(tmp)
        self.repos = RepoManager(settings.caches)

    def _initial(self, job) -> dict:
        model = job.request["model"]
        mirror = self.repos.mirror(str(self.up))
        cfg = self.tmp / f"{model}.json"
        cfg.write_text(json.dumps({"model_type": model, "architectures": ["XForCausalLM"], "hidden_size": 64,
                                   "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}))
        tid = f"optimum-intel-{model}-{job.id}"
        job_dir = self.settings.path("jobs", tid)
        job_dir.mkdir(parents=True, exist_ok=True)
        ws = Workspace(path=mirror, base_rev=self.base, source="git", origin=str(self.up))
        return {"request": {"model": model, "target": "optimum-intel", "config_path": str(cfg),
                            "mirror": str(mirror), "publish": job.request.get("publish", "auto")},
                "thread_id": tid, "job_dir": str(job_dir), "model_type": model,
                "workspace": ws.model_dump(mode="json"), "attempts": [], "timings": {}}

    def run(self, job, resume, on_stage, on_thread) -> RunResult:
        from agent.graph.run import drive

        initial = None if job.thread_id else self._initial(job)
        tid = job.thread_id or initial["thread_id"]
        on_thread(tid)
        deps = Deps(settings=self.settings, target=scripted_target(), forge=self.forge, repos=self.repos,
                    sandbox_factory=lambda: SimpleNamespace(name="none", warning=None))
        values, how = drive(self.settings, deps, tid, initial,
                            lambda node, _: None if node.startswith("__") else on_stage(node), resume=resume)
        if how == "interrupted":
            return RunResult(status="awaiting_approval", thread_id=tid, message="verified")
        pr = values.get("pr") or {}
        return RunResult(status="done", thread_id=tid, outcome=values.get("outcome", ""),
                         message=values.get("message", ""), pr_url=pr.get("url", ""))


WEBHOOK_SECRET = "whsec_test_5f2a9c0d"
SLACK_SECRET = "slack_sign_77aa01bc"
API_TOKEN = "api_tok_9b1c22ef"
GH_TOKEN = "ghs_test_token_31d4e5"
ALL_SECRETS = (WEBHOOK_SECRET, SLACK_SECRET, API_TOKEN, GH_TOKEN)
REPO = "acme/optimum-intel"


def github_config(gh_url: str, tmp: Path):
    from tools.forge.github import GitHubConfig

    remotes = tmp / "remotes"
    bare = remotes / f"{REPO}.git"
    if not bare.exists():
        git.Repo.init(bare, bare=True, mkdir=True)
    return GitHubConfig(token=GH_TOKEN, api_url=gh_url, repos={"optimum-intel": REPO},
                        push_url_template=str(remotes / "{repo}.git"), seconds_between_writes=0)


def make_service(tmp: Path, gh_url: str | None, runner_factory, *, concurrency: int = 1, clock=time.time,
                 **svc_overrides):
    """(service, forge) wired like production, with every secret set and the fake GitHub behind it."""
    from agent.service.app import build_service
    from agent.service.settings import ServiceSettings
    from agent.settings import Settings
    from tools.forge.github import GitHubConfig, GitHubForge

    settings = Settings(data_dir=tmp / "data")
    gh = github_config(gh_url, tmp) if gh_url else GitHubConfig()
    # The runners here are scripted (no sandbox runs); the opt-in to the local backend is still explicit.
    svc = ServiceSettings(**{"github_webhook_secret": WEBHOOK_SECRET, "slack_signing_secret": SLACK_SECRET,
                             "api_token": API_TOKEN, "concurrency": concurrency,
                             "callback_hosts": ["127.0.0.1"], "allow_local_sandbox": True, **svc_overrides})
    forge = GitHubForge(gh, settings.data_dir) if gh_url else None
    service = build_service(settings, svc, gh, runner=runner_factory(settings, forge), clock=clock)
    service.pool.poll_s = 0.05
    return service, forge


def wait_for(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")
