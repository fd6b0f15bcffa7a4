"""Secrets never leave the process: scan logs, the queue, checkpoints, files, PRs and comments."""

from __future__ import annotations

import logging
import subprocess

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (ALL_SECRETS, API_TOKEN, GH_TOKEN, REPO, WEBHOOK_SECRET, ScriptedGraphRunner,
                                     fake_tiny, github_request, labeled, make_service, wait_for)

ISSUES = "acme/requests"


class LeakyRunner(ScriptedGraphRunner):
    """Fails the way careless code does: the exception text carries credentials."""

    def run(self, job, resume, on_stage, on_thread):
        if job.request["model"] == "leaky":
            raise RuntimeError(f"push to https://x-access-token:{GH_TOKEN}@github.com failed "
                               f"(webhook secret {WEBHOOK_SECRET})")
        return super().run(job, resume, on_stage, on_thread)


def scan(text: str, where: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, f"secret found in {where}"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record):
        self.lines.append((record.name, self.format(record)))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One full run (a PR, a failure that tries to leak), shared by the scans below."""
    import tools.tiny.model

    tmp_path = tmp_path_factory.mktemp("secrets")
    root, handler = logging.getLogger(), Collect()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    responses = []
    with pytest.MonkeyPatch.context() as mp, FakeGitHubServer() as srv:
        mp.setattr(tools.tiny.model, "build_tiny", fake_tiny(tmp_path))
        srv.gh.token = GH_TOKEN
        srv.gh.permissions["alice"] = "write"
        good, leaky = srv.gh.add_issue(ISSUES, "/onboard newmodel"), srv.gh.add_issue(ISSUES, "/onboard leaky")
        service, _ = make_service(tmp_path, srv.url, lambda s, f: LeakyRunner(s, f, tmp_path))
        try:
            with TestClient(create_app(service)) as client:
                for number, text in ((good, "/onboard newmodel"), (leaky, "/onboard leaky")):
                    r = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "issues",
                                                                       labeled(ISSUES, number, text)))
                    responses.append(r.text)
                logging.getLogger("some.library").warning("oops, config was token=%s", GH_TOKEN)
                wait_for(lambda: len(service.queue.list()) == 2 and all(j.notified for j in service.queue.list()),
                         60)
                responses.append(client.get("/jobs", headers={"Authorization": f"Bearer {API_TOKEN}"}).text)
                responses.append(client.get("/healthz").text)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        yield tmp_path, srv.gh, responses, handler.lines, service


def test_outcomes_are_the_expected_ones(ran):
    _, gh, _, _, service = ran
    by_model = {j.request["model"]: j for j in service.queue.list()}
    assert by_model["newmodel"].outcome == "pr" and by_model["leaky"].status == "failed"
    assert "***" in by_model["leaky"].message  # the leak was caught, not avoided by luck
    assert len(gh.open_pulls(REPO)) == 1


def test_no_secret_in_logs(ran):
    _, _, _, logs, _ = ran
    assert len(logs) > 20 and any("token=***" in line for _, line in logs)
    for name, line in logs:
        scan(line, f"log record from {name}")


def test_no_secret_in_files_queue_or_checkpoints(ran):
    tmp_path, _, _, _, _ = ran
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "jobs.sqlite" for p in files) and any(p.name == "checkpoints.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in ALL_SECRETS:
            assert secret.encode() not in data, f"secret in {path}"
    remote = tmp_path / "remotes" / f"{REPO}.git"
    history = subprocess.run(["git", "-C", str(remote), "log", "-p", "--all"], capture_output=True, text=True).stdout
    assert history
    scan(history, "pushed commits")


def test_no_secret_in_pr_comments_requests_or_responses(ran):
    _, gh, responses, _, _ = ran
    for pr in gh.pulls.values():
        scan(pr["body"] + pr["title"], "PR")
    comments = list(gh.comments.values())
    assert any("failed" in c["body"] for c in comments)
    for c in comments:
        scan(c["body"], "issue comment")
    for req in gh.requests:
        scan(req.path + req.body, f"request {req.method} {req.path}")
    for text in responses:
        scan(text, "HTTP response")
