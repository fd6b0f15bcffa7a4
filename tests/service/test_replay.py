"""A captured, validly signed delivery replayed with fresh (unsigned) delivery ids does nothing new.

De-duplication keys on what the signature covers: the comment id of a comment, the issue id,
action and label of an issue event. Each replay below comes after the first job finished, so
joining the active job cannot hide a missing de-duplication.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (REPO, WEBHOOK_SECRET, ForgeRunner, commented, github_request, labeled,
                                     make_service, wait_for)

ISSUES = "acme/requests"


@pytest.fixture
def env(tmp_path):
    with FakeGitHubServer() as srv:
        srv.gh.token = "ghs_test_token_31d4e5"
        srv.gh.permissions.update(alice="write")
        service, _ = make_service(tmp_path, srv.url, lambda s, f: ForgeRunner(f, tmp_path))
        with TestClient(create_app(service)) as client:
            yield client, service, srv.gh


def post(client, event, payload, delivery):
    return client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, event, payload, delivery=delivery))


def replay(client, service, gh, event, payload, number):
    """Send `payload` three times with new delivery ids; return (jobs, comments) added."""
    jobs, comments = len(service.queue.list()), len(gh.issue_comments(ISSUES, number))
    for i in range(3):
        r = post(client, event, payload, f"replayed-{event}-{i}")
        assert r.status_code == 200 and r.json() == {"duplicate": True}, r.text
    service.dispatcher.background.shutdown(wait=True)
    return len(service.queue.list()) - jobs, len(gh.issue_comments(ISSUES, number)) - comments


def test_a_replayed_run_comment_makes_no_new_job_or_comment(env):
    client, service, gh = env
    number = gh.add_issue(ISSUES, "add newmodel")
    payload = commented(ISSUES, number, "/onboard newmodel", "alice")
    job_id = post(client, "issue_comment", payload, "d-1").json()["job"]
    wait_for(lambda: service.queue.get(job_id).notified)
    assert replay(client, service, gh, "issue_comment", payload, number) == (0, 0)
    assert len(gh.open_pulls(REPO)) == 1


def test_a_replayed_label_event_makes_no_new_job(env):
    client, service, gh = env
    number = gh.add_issue(ISSUES, "/onboard newmodel")
    payload = labeled(ISSUES, number, "/onboard newmodel")
    job_id = post(client, "issues", payload, "d-2").json()["job"]
    wait_for(lambda: service.queue.get(job_id).notified)
    assert replay(client, service, gh, "issues", payload, number) == (0, 0)


def test_a_replayed_status_command_gets_one_answer(env):
    client, service, gh = env
    number = gh.add_issue(ISSUES, "add newmodel")
    job_id = post(client, "issue_comment", commented(ISSUES, number, "/onboard newmodel", "alice"), "d-3").json()["job"]
    wait_for(lambda: service.queue.get(job_id).notified)
    status = commented(ISSUES, number, f"/onboard status {job_id}", "alice")
    assert post(client, "issue_comment", status, "d-4").status_code == 202
    wait_for(lambda: any("onboarder:reply:" in c["body"] for c in gh.issue_comments(ISSUES, number)))
    assert replay(client, service, gh, "issue_comment", status, number) == (0, 0)


def test_a_new_comment_with_the_same_text_is_a_new_request(env):
    client, service, gh = env
    number = gh.add_issue(ISSUES, "add newmodel")
    first = post(client, "issue_comment", commented(ISSUES, number, "/onboard newmodel", "alice"), "d-5").json()
    wait_for(lambda: service.queue.get(first["job"]).notified)
    again = post(client, "issue_comment", commented(ISSUES, number, "/onboard newmodel", "alice"), "d-6")
    assert again.status_code == 202 and again.json()["created"] and again.json()["job"] != first["job"]
