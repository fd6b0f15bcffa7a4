"""Progress and outcome reach the trigger: chat callbacks on allowed hosts only, issue replies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from agent.service.notify import allowed_url
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (API_TOKEN, SLACK_SECRET, WEBHOOK_SECRET, ForgeRunner, github_request, labeled,
                                     make_service, slack_request, wait_for)


@pytest.fixture
def receiver():
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    srv.shutdown()
    srv.server_close()


def test_allowed_url():
    hosts = ["hooks.slack.com", "127.0.0.1"]
    assert allowed_url("https://hooks.slack.com/commands/T1/2/x", hosts)
    assert allowed_url("http://127.0.0.1:9/x", hosts)
    assert not allowed_url("http://hooks.slack.com/x", hosts)  # plain http only on loopback
    assert not allowed_url("https://169.254.169.254/latest", hosts)
    assert not allowed_url("https://hooks.slack.com.evil.example/x", hosts)


def test_slack_progress_and_outcome_go_to_the_response_url(tmp_path, receiver):
    url, got = receiver
    with FakeGitHubServer() as gh:
        gh.gh.token = "ghs_test_token_31d4e5"
        service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
        with TestClient(create_app(service)) as client:
            form = {"text": "newmodel --approve", "trigger_id": "t1", "response_url": url}
            job_id = client.post("/chatops", **slack_request(SLACK_SECRET, form)).json()["job"]["id"]
            wait_for(lambda: service.queue.get(job_id).notified)
    texts = [m["text"] for m in got]
    assert any("stage `verify`" in t for t in texts)
    assert "pull request https://github.example/" in texts[-1]


def test_callback_to_a_host_not_allowed_is_dropped(tmp_path, receiver):
    url, got = receiver
    service, _ = make_service(tmp_path, None, lambda s, f: ForgeRunner(None, tmp_path), callback_hosts=[])
    with TestClient(create_app(service)) as client:
        r = client.post("/chatops", json={"text": "newmodel --dry-run", "callback_url": url},
                        headers={"Authorization": f"Bearer {API_TOKEN}"})
        wait_for(lambda: service.queue.get(r.json()["job"]["id"]).notified)
    assert got == []


def test_labelled_issue_without_a_command_gets_told_so(tmp_path):
    with FakeGitHubServer() as gh:
        gh.gh.token = "ghs_test_token_31d4e5"
        gh.gh.permissions["alice"] = "write"
        number = gh.gh.add_issue("acme/requests", "Please support seed_oss")
        service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
        with TestClient(create_app(service)) as client:
            payload = labeled("acme/requests", number, "Please support seed_oss")
            r = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "issues", payload))
            service.dispatcher.background.shutdown(wait=True)
        assert r.json()["ignored"] and service.queue.list() == []
        comments = gh.gh.issue_comments("acme/requests", number)
        assert len(comments) == 1 and "/onboard MODEL" in comments[0]["body"]


def test_issue_with_target_all_gets_one_table_comment_for_every_target(tmp_path):
    from tools.targets import names

    with FakeGitHubServer() as gh:
        gh.gh.token = "ghs_test_token_31d4e5"
        gh.gh.permissions["alice"] = "write"
        number = gh.gh.add_issue("acme/requests", "/onboard newmodel --target all")
        service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
        with TestClient(create_app(service)) as client:
            payload = labeled("acme/requests", number, "/onboard newmodel --target all")
            client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "issues", payload))
            wait_for(lambda: len(service.queue.list()) == len(names())
                     and all(j.notified for j in service.queue.list()), timeout=30)
            service.dispatcher.background.shutdown(wait=True)
        comments = gh.gh.issue_comments("acme/requests", number)
    # One comment, edited as the targets moved on: its last state has a finished row per target.
    assert len(comments) == 1, [c["body"][:80] for c in comments]
    body = comments[0]["body"]
    assert f"({len(names())}/{len(names())} finished)" in body
    # The fake GitHub has a repository for optimum-intel only: the others end with their reason, in the same table.
    assert "| optimum-intel | done | pr | https://github.example/" in body
    for target in set(names()) - {"optimum-intel"}:
        row = next(line for line in body.splitlines() if line.startswith(f"| {target} |"))
        assert row.startswith(f"| {target} | failed |") and f"no GitHub repository configured for target '{target}'" in row


def test_chat_target_all_answers_with_one_table_and_posts_it_once_settled(tmp_path, receiver):
    from tools.targets import names

    url, got = receiver
    service, _ = make_service(tmp_path, None, lambda s, f: ForgeRunner(None, tmp_path))
    with TestClient(create_app(service)) as client:
        r = client.post("/chatops", json={"text": "/onboard newmodel --target all --dry-run", "callback_url": url},
                        headers={"Authorization": f"Bearer {API_TOKEN}"})
        answer = r.json()["text"]
        wait_for(lambda: len(got) >= 1 and all(j.notified for j in service.queue.list()), timeout=30)
    # The answer is the table (every target queued); the callback gets the settled table, once.
    assert answer.count("| queued |") == len(names()) and "| target | state |" in answer
    assert len(got) == 1, [m["text"][:80] for m in got]
    assert got[0]["text"].count("| done | dry_run |") == len(names())
