"""The HTTP face with FastAPI's TestClient: signatures, replay, de-dup, fail-closed defaults."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from agent.service.app import build_service, create_app
from agent.service.settings import ServiceSettings
from agent.settings import Settings
from tests.fakes.service_env import (API_TOKEN, SLACK_SECRET, WEBHOOK_SECRET, github_request, labeled,
                                     make_service, slack_request)
from tools.forge.github import GitHubConfig

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class NeverRuns:
    def run(self, *a):
        raise AssertionError("no worker runs in these tests")


@pytest.fixture
def client(tmp_path):
    service, _ = make_service(tmp_path, None, lambda s, f: NeverRuns())
    service.start_workers = False
    with TestClient(create_app(service)) as c:
        c.service = service
        yield c


def test_defaults_fail_closed(tmp_path):
    service = build_service(Settings(data_dir=tmp_path), ServiceSettings(allow_local_sandbox=True), GitHubConfig(),
                            runner=NeverRuns(), start_workers=False)
    with TestClient(create_app(service)) as c:
        health = c.get("/healthz").json()
        assert health["status"] == "ok"
        assert any("GITHUB_WEBHOOK_SECRET" in why for why in health["disabled"].values())
        r = c.post("/webhooks/github", **github_request("anything", "issues", labeled("a/b", 1, "/onboard llama")))
        assert r.status_code == 503 and "ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET" in r.json()["detail"]
        assert c.post("/chatops", **slack_request("x", {"text": "llama"})).status_code == 503
        assert c.post("/chatops", json={"text": "llama"}).status_code == 503
        assert c.get("/jobs").status_code == 503
        assert service.queue.list() == []


def test_github_valid_forged_and_replayed(client):
    payload = labeled("acme/x", 7, "/onboard llama")
    forged = github_request("wrong-secret", "issues", payload, delivery="d-1")
    assert client.post("/webhooks/github", **forged).status_code == 401
    unsigned = github_request(WEBHOOK_SECRET, "issues", payload, delivery="d-1", signature="")
    assert client.post("/webhooks/github", **unsigned).status_code == 401
    good = github_request(WEBHOOK_SECRET, "issues", payload, delivery="d-1")  # forged tries did not burn "d-1"
    r = client.post("/webhooks/github", **good)
    assert r.status_code == 202 and r.json()["created"] is True
    replay = client.post("/webhooks/github", **good)
    assert replay.status_code == 200 and replay.json() == {"duplicate": True}
    jobs = client.service.queue.list()
    assert len(jobs) == 1 and jobs[0].request["publish"] == "auto"
    assert jobs[0].request["authorize"] == {"repo": "acme/x", "login": "alice"}
    assert jobs[0].request["issue_text"] == "/onboard llama"  # carried to the LLM prompt as quoted data


def test_github_other_label_and_bad_command_create_nothing(client):
    other = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "issues",
                                                           labeled("acme/x", 1, "/onboard llama", label="bug")))
    bad = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "issues",
                                                         labeled("acme/x", 2, "/onboard ../../etc/passwd")))
    ping = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, "ping", {"zen": "hi"}))
    assert other.json()["ignored"] and bad.json()["ignored"] and ping.json() == {"pong": True}
    assert client.service.queue.list() == []


def test_slack_signed_old_and_forged(client):
    form = {"command": "/onboard", "text": "llama", "team_id": "T1", "trigger_id": "tr-1", "user_name": "ann"}
    old = slack_request(SLACK_SECRET, form, ts=time.time() - 301)
    assert client.post("/chatops", **old).status_code == 401
    forged = slack_request("not-the-secret", form)
    assert client.post("/chatops", **forged).status_code == 401
    r = client.post("/chatops", **slack_request(SLACK_SECRET, form))
    assert r.status_code == 200 and r.json()["created"] and "approval" in r.json()["text"]
    again = client.post("/chatops", **slack_request(SLACK_SECRET, form))  # Slack retry: same trigger_id
    assert not again.json()["created"] and again.json()["job"]["id"] == r.json()["job"]["id"]
    assert client.service.queue.list()[0].request["publish"] == "approval"
    assert client.service.queue.list()[0].request["chat_text"] == "llama"


def test_slack_approve_flag_publishes_directly_and_help(client):
    r = client.post("/chatops", **slack_request(SLACK_SECRET, {"text": "qwen3 --approve", "trigger_id": "t2"}))
    assert client.service.queue.get(r.json()["job"]["id"]).request["publish"] == "auto"
    helped = client.post("/chatops", **slack_request(SLACK_SECRET, {"text": "help", "trigger_id": "t3"}))
    assert "/onboard status JOB" in helped.json()["text"] and helped.json()["job"] is None


def test_json_chat_needs_the_bearer_token(client):
    assert client.post("/chatops", json={"text": "llama"}).status_code == 401
    assert client.post("/chatops", json={"text": "llama"}, headers={"Authorization": "Bearer no"}).status_code == 401
    r = client.post("/chatops", json={"text": "/onboard llama --dry-run", "request_id": "r1"}, headers=AUTH)
    again = client.post("/chatops", json={"text": "/onboard llama --dry-run", "request_id": "r1"}, headers=AUTH)
    assert r.json()["created"] and not again.json()["created"]
    assert client.service.queue.list()[0].request["publish"] == "dry_run"


def test_jobs_api(client):
    created = client.post("/chatops", json={"text": "llama", "request_id": "r9"}, headers=AUTH).json()["job"]
    assert client.get("/jobs").status_code == 401
    listed = client.get("/jobs", headers=AUTH).json()
    assert [j["id"] for j in listed] == [created["id"]] and "reply" not in listed[0]
    one = client.get(f"/jobs/{created['id']}", headers=AUTH).json()
    assert one["status"] == "queued" and one["report"] is None
    assert client.get("/jobs/nope", headers=AUTH).status_code == 404
    assert client.post(f"/jobs/{created['id']}/approve", json={}, headers=AUTH).status_code == 409
    assert client.post(f"/jobs/{created['id']}/cancel", headers=AUTH).json()["status"] == "cancelled"
    status = client.post("/chatops", json={"text": f"/onboard status {created['id']}"}, headers=AUTH).json()
    assert "cancelled" in status["text"]


def test_jobs_api_says_which_worker_runs_a_job_and_chat_answers_do_not(client):
    answer = client.post("/chatops", json={"text": "llama", "request_id": "r10"}, headers=AUTH).json()
    assert "worker" not in answer["job"]
    service = client.app.state.service
    service.queue.claim("w2@host-b")
    assert [j["worker"] for j in client.get("/jobs", headers=AUTH).json()] == ["w2@host-b"]
    assert client.get(f"/jobs/{answer['job']['id']}", headers=AUTH).json()["worker"] == "w2@host-b"


def test_openapi_is_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/chatops", "/webhooks/github", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/approve",
            "/healthz"} <= set(paths)
    chat = paths["/chatops"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(chat)


def test_nightly_sweep_is_scheduled_only_when_asked(tmp_path):
    service, _ = make_service(tmp_path, None, lambda s, f: NeverRuns(), nightly=True)
    service.start_workers = False
    app = create_app(service)
    with TestClient(app):
        jobs = app.state.scheduler.get_jobs()
        assert [j.id for j in jobs] == ["nightly:optimum-intel"] and jobs[0].next_run_time is not None
    assert not app.state.scheduler.running


def test_no_scheduler_by_default(client):
    assert client.app.state.scheduler is None


def test_delivery_that_fails_to_be_handled_can_be_redelivered(client, monkeypatch):
    req = github_request(WEBHOOK_SECRET, "issues", labeled("acme/x", 7, "/onboard llama"), delivery="d-9")

    def boom(*a):
        raise RuntimeError("disk full")

    monkeypatch.setattr(client.service.dispatcher, "github_delivery", boom)
    with pytest.raises(RuntimeError):
        client.post("/webhooks/github", **req)
    monkeypatch.undo()
    assert client.post("/webhooks/github", **req).status_code == 202


def test_target_all_queues_one_job_per_target(client):
    from tools.targets import names

    r = client.post("/chatops", json={"text": "/onboard cwm --target all", "request_id": "fan"}, headers=AUTH)
    assert r.status_code == 200, r.text
    jobs = client.service.queue.list(limit=50)
    assert sorted(j.request["target"] for j in jobs) == names()
    assert len({j.subject for j in jobs}) == len(names())  # each target has its own queue slot
    # The same request again joins the jobs already queued: nothing new.
    client.post("/chatops", json={"text": "/onboard cwm --target all", "request_id": "fan"}, headers=AUTH)
    assert len(client.service.queue.list(limit=50)) == len(names())
