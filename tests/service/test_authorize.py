"""Who may queue, join and command jobs: authorised before a job is claimed, commands scoped to their origin.

Against the fake GitHub: `eve` has read permission, `alice` write (on every repository, as a
collaborator of several repositories whose webhooks reach the service would).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (API_TOKEN, REPO, SLACK_SECRET, WEBHOOK_SECRET, ForgeRunner, commented,
                                     github_request, labeled, make_service, slack_request, wait_for)

ISSUES = "acme/requests"
OTHER = "mallory/playground"  # alice can write here too; its webhook reaches the same service
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def gh():
    with FakeGitHubServer() as srv:
        srv.gh.token = "ghs_test_token_31d4e5"
        srv.gh.permissions.update(alice="write", eve="read")
        yield srv


def deliver(client, payload, event="issue_comment"):
    r = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, event, payload))
    assert r.status_code in (200, 202), r.text
    return r.json()


def bodies(gh, repo, number):
    return [c["body"] for c in gh.gh.issue_comments(repo, number)]


def settled(service):
    """Every job has reached a final state and its final message went out."""
    jobs = service.queue.list()
    return jobs and all(j.notified for j in jobs) and jobs


def test_a_strangers_request_first_does_not_swallow_a_writers(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES, "please add newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False  # both requests are in before any worker looks at either
    with TestClient(create_app(service)) as client:
        deliver(client, commented(ISSUES, number, "/onboard newmodel", "eve"))
        alice = deliver(client, commented(ISSUES, number, "/onboard newmodel", "alice"))
        service.pool.start()
        wait_for(lambda: settled(service) and len(gh.gh.open_pulls(REPO)) == 1)
        wait_for(lambda: any("eve" in b and "write" in b for b in bodies(gh, ISSUES, number)))
    assert service.queue.get(alice["job"]).status != "unauthorized"
    assert len(gh.gh.open_pulls(REPO)) == 1  # alice's request ran
    finals = [b for b in bodies(gh, ISSUES, number) if "onboarder:final:" in b]
    assert any(gh.gh.open_pulls(REPO)[0]["html_url"] in b for b in finals)
    told = [b for b in bodies(gh, ISSUES, number) if "eve" in b and "write" in b]
    assert len(told) == 1 and "nothing was queued" in told[0]


def test_an_operator_request_is_never_merged_into_a_strangers_job(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES, "please add newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    with TestClient(create_app(service)) as client:
        stranger = deliver(client, commented(ISSUES, number, "/onboard newmodel", "eve"))
        op = client.post("/chatops", json={"text": "/onboard newmodel --approve", "request_id": "op-1"},
                         headers=AUTH).json()
        assert op["job"]["id"] != stranger["job"]
        service.pool.start()
        done = wait_for(lambda: (j := service.queue.get(op["job"]["id"])).notified and j)
    assert done.status == "done" and done.outcome == "pr" and len(gh.gh.open_pulls(REPO)) == 1
    assert service.queue.get(stranger["job"]).status == "unauthorized"


def test_a_writer_joining_a_running_request_is_told_which_job(tmp_path, gh):
    second = gh.gh.add_issue(ISSUES, "newmodel please")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    with TestClient(create_app(service)) as client:
        op = client.post("/chatops", json={"text": "/onboard newmodel", "request_id": "op-2"}, headers=AUTH).json()
        deliver(client, commented(ISSUES, second, "/onboard newmodel", "alice"))
        service.pool.start()
        wait_for(lambda: any(op["job"]["id"] in b for b in bodies(gh, ISSUES, second)))
    told = [b for b in bodies(gh, ISSUES, second) if op["job"]["id"] in b]
    assert len(told) == 1 and "already on it" in told[0]


def test_issue_commands_cannot_reach_chat_jobs_or_other_repositories(tmp_path, gh):
    here, there = gh.gh.add_issue(ISSUES, "newmodel"), gh.gh.add_issue(OTHER, "hi")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    with TestClient(create_app(service)) as client:
        chat = client.post("/chatops", json={"text": "/onboard chatmodel", "request_id": "c1"}, headers=AUTH).json()
        waiting = wait_for(lambda: (j := service.queue.get(chat["job"]["id"])).status == "awaiting_approval" and j)
        for n, text in enumerate((f"/onboard status {waiting.id}", f"/onboard approve {waiting.id}",
                                  f"/onboard approve {waiting.thread_id}", f"/onboard cancel {waiting.id}")):
            deliver(client, commented(OTHER, there, text, "alice"))
            deliver(client, commented(ISSUES, here, text, "alice"))
            wait_for(lambda n=n: len(bodies(gh, OTHER, there)) == n + 1 and len(bodies(gh, ISSUES, here)) == n + 1)
        assert service.queue.get(waiting.id).status == "awaiting_approval"
        approved = client.post(f"/jobs/{waiting.id}/approve", json={"by": "ops"}, headers=AUTH)
        assert approved.status_code == 200  # the operator API acts on any job, as before
        wait_for(lambda: service.queue.get(waiting.id).status == "done")
    for reply in bodies(gh, OTHER, there) + bodies(gh, ISSUES, here):
        assert f"no job {waiting.id}" in reply or f"no job {waiting.thread_id}" in reply
        assert "awaiting_approval" not in reply and "approved" not in reply and "cancelling" not in reply


def test_a_github_job_answers_only_its_own_issue_and_not_chat(tmp_path, gh):
    mine, other_issue = gh.gh.add_issue(ISSUES, "newmodel"), gh.gh.add_issue(ISSUES, "unrelated")
    there = gh.gh.add_issue(OTHER, "hi")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False  # the job stays unfinished while commands arrive
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES, mine, "/onboard newmodel"), "issues")["job"]
        before = service.queue.get(job_id).status
        slack = client.post("/chatops", **slack_request(SLACK_SECRET, {"text": f"cancel {job_id}", "trigger_id": "s"}))
        api_chat = client.post("/chatops", json={"text": f"/onboard cancel {job_id}"}, headers=AUTH)
        assert f"no job {job_id}" in slack.json()["text"] and f"no job {job_id}" in api_chat.json()["text"]
        deliver(client, commented(OTHER, there, f"/onboard cancel {job_id}", "alice"))
        deliver(client, commented(ISSUES, other_issue, f"/onboard cancel {job_id}", "alice"))
        wait_for(lambda: bodies(gh, OTHER, there) and bodies(gh, ISSUES, other_issue))
        assert service.queue.get(job_id).status == before
        deliver(client, commented(ISSUES, mine, f"/onboard cancel {job_id}", "alice"))
        wait_for(lambda: service.queue.get(job_id).status == "cancelled")
    assert "no job" in bodies(gh, OTHER, there)[0] and "no job" in bodies(gh, ISSUES, other_issue)[0]
