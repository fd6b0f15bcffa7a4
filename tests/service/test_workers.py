"""Workers against the fake GitHub: authorisation, kill and restart, one PR and one final comment."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (REPO, WEBHOOK_SECRET, ForgeRunner, Killed, commented, github_request, labeled,
                                     make_service, wait_for)

ISSUES_REPO = "acme/requests"


@pytest.fixture
def gh():
    with FakeGitHubServer() as srv:
        srv.gh.token = "ghs_test_token_31d4e5"
        srv.gh.permissions.update(alice="write", root="admin", eve="read")
        yield srv


def finals(gh, number):
    return [c for c in gh.gh.issue_comments(ISSUES_REPO, number) if "onboarder:final:" in c["body"]]


def deliver(client, payload, event="issues", delivery=None):
    r = client.post("/webhooks/github", **github_request(WEBHOOK_SECRET, event, payload, delivery=delivery))
    assert r.status_code in (200, 202), r.text
    return r.json()


def test_labelled_issue_runs_and_links_the_pr(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
        job = wait_for(lambda: (j := service.queue.get(job_id)).notified and j)
    assert job.status == "done" and job.outcome == "pr"
    pr = gh.gh.open_pulls(REPO)
    assert len(pr) == 1 and pr[0]["html_url"] == job.pr_url and pr[0]["draft"]
    assert len(finals(gh, number)) == 1 and job.pr_url in finals(gh, number)[0]["body"]
    progress = [c for c in gh.gh.issue_comments(ISSUES_REPO, number) if "onboarder:progress:" in c["body"]]
    assert len(progress) == 1  # edited at each stage, not one comment per stage


def test_commands_from_a_user_without_write_permission_run_nothing_and_get_one_answer(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "please add newmodel")
    runner_box = {}

    def factory(settings, forge):
        runner_box["r"] = ForgeRunner(forge, tmp_path)
        return runner_box["r"]

    service, _ = make_service(tmp_path, gh.url, factory)
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, commented(ISSUES_REPO, number, "/onboard newmodel", "eve"), "issue_comment")["job"]
        job = wait_for(lambda: (j := service.queue.get(job_id)).notified and j)
        deliver(client, commented(ISSUES_REPO, number, "/onboard help", "mallory"), "issue_comment")
        service.dispatcher.background.shutdown(wait=True)
    assert runner_box["r"].runs == [] and not gh.gh.open_pulls(REPO)
    assert job.status == "unauthorized" and "eve" in job.message
    answers = sorted(c["body"].split("\n")[0] for c in gh.gh.issue_comments(ISSUES_REPO, number))
    assert answers == [f"@{who}: only people with write access to {ISSUES_REPO} can run `/onboard` commands here; "
                       "nothing was queued." for who in ("eve", "mallory")]


def test_worker_killed_mid_job_then_restart_makes_one_pr_and_one_final_comment(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    first, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path / "r1", die_after_publish=True))
    first.start_workers = False
    with TestClient(create_app(first)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
        # the same label event again (a redelivery) is a duplicate
        assert deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel")) == {"duplicate": True}
    first.pool.admit_pending()
    with pytest.raises(Killed):  # dies after its PR was opened, before the job was marked done
        first.pool.process(first.queue.claim("worker-0"))
    assert first.queue.get(job_id).status == "running" and len(gh.gh.open_pulls(REPO)) == 1

    second, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path / "r2"))
    with TestClient(create_app(second)):
        job = wait_for(lambda: (j := second.queue.get(job_id)).notified and j)
    assert job.status == "done" and job.runs == 2
    assert len(gh.gh.open_pulls(REPO)) == 1
    assert len(finals(gh, number)) == 1


def test_killed_after_the_final_comment_does_not_post_it_twice(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    first, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path / "r1"))
    first.start_workers = False
    real_final = first.pool.notifier.final

    def final_then_die(job, text):
        real_final(job, text)
        raise Killed()

    first.pool.notifier.final = final_then_die
    with TestClient(create_app(first)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
    first.pool.admit_pending()
    with pytest.raises(Killed):
        first.pool.process(first.queue.claim("worker-0"))
    assert not first.queue.get(job_id).notified and len(finals(gh, number)) == 1

    second, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path / "r2"))
    with TestClient(create_app(second)):
        wait_for(lambda: second.queue.get(job_id).notified)
    assert len(finals(gh, number)) == 1 and len(gh.gh.open_pulls(REPO)) == 1


def test_status_and_cancel_from_the_jobs_own_issue(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
        done = wait_for(lambda: (j := service.queue.get(job_id)).notified and j)
        deliver(client, commented(ISSUES_REPO, number, f"/onboard status {done.thread_id}", "alice"), "issue_comment")
        deliver(client, commented(ISSUES_REPO, number, f"/onboard cancel {job_id}", "alice"), "issue_comment")
        deliver(client, commented(ISSUES_REPO, number, f"/onboard status {job_id}", "eve"), "issue_comment")
        service.dispatcher.background.shutdown(wait=True)
    replies = [c["body"] for c in gh.gh.issue_comments(ISSUES_REPO, number) if "onboarder:reply:" in c["body"]]
    assert len(replies) == 3
    assert any(f"job `{job_id}`: done" in r and done.pr_url in r for r in replies)
    assert any(f"job {job_id} already done" in r for r in replies)
    assert any(r.startswith("@eve: only people with write access") for r in replies)


def test_github_outage_at_final_message_is_retried(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
    service.pool.admit_pending()  # alice's permission, cached before the outage
    gh.gh.token = "rotated"  # every GitHub call fails now (the publish too)
    job = service.pool.process(service.queue.claim("worker-0"))
    assert job.status == "failed" and not job.notified and "ghs_test_token_31d4e5" not in job.message
    gh.gh.token = "ghs_test_token_31d4e5"
    service.pool.flush_notifications(force=True)
    assert service.queue.get(job_id).notified and len(finals(gh, number)) == 1
    assert "failed" in finals(gh, number)[0]["body"]


def test_permission_lookup_failure_fails_closed_and_silent(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
    gh.gh.token = "rotated"
    service.pool.admit_pending()
    job = service.queue.get(job_id)
    assert job.status == "failed" and "permission check failed" in job.message and job.notified
    assert service.queue.claim("worker-0") is None
    gh.gh.token = "ghs_test_token_31d4e5"
    assert not gh.gh.open_pulls(REPO) and gh.gh.issue_comments(ISSUES_REPO, number) == []


def test_cancel_of_a_running_job_stops_at_the_next_stage(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    with TestClient(create_app(service)) as client:
        deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))
    service.pool.admit_pending()
    job = service.queue.claim("worker-0")
    service.queue.cancel(job.id)  # arrives while the job runs
    done = service.pool.process(job)
    assert done.status == "cancelled" and done.notified and not gh.gh.open_pulls(REPO)
    assert "cancelled" in finals(gh, number)[0]["body"]


def test_a_job_that_keeps_killing_its_process_is_given_up(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    service.pool.max_runs = 2
    with TestClient(create_app(service)) as client:
        job_id = deliver(client, labeled(ISSUES_REPO, number, "/onboard newmodel"))["job"]
    service.pool.admit_pending()
    for _ in range(2):  # two runs that died with their process
        service.queue.claim("worker-0")
        service.queue.recover()
    job = service.pool.process(service.queue.claim("worker-0"))
    assert job.status == "failed" and "gave up after 2 runs" in job.message and job.notified
    assert not gh.gh.open_pulls(REPO) and "gave up" in finals(gh, number)[0]["body"]
    assert service.queue.get(job_id).runs == 3


def test_a_job_queued_unchecked_by_an_older_version_is_admitted_before_it_runs(tmp_path, gh):
    number = gh.gh.add_issue(ISSUES_REPO, "/onboard newmodel")
    service, _ = make_service(tmp_path, gh.url, lambda s, f: ForgeRunner(f, tmp_path))
    service.start_workers = False
    # the row an older version wrote: queued at once, the sender to be checked by the worker
    job, _ = service.queue.enqueue(trigger_key="github:old-delivery", subject="optimum-intel|newmodel",
                                   source="github", request={"model": "newmodel", "target": "optimum-intel",
                                                             "authorize": {"repo": ISSUES_REPO, "login": "eve"}},
                                   reply={"kind": "github", "repo": ISSUES_REPO, "issue": number})
    assert job.status == "queued"
    after = service.pool.process(service.queue.claim("worker-0"))
    assert after.status == "unauthorized" and after.notified and not gh.gh.open_pulls(REPO)
