"""The approval round trip through the real graph: interrupt before publish, resume on approval.

The graph, checkpointer, `drive`, queue, workers and GitHub forge are real; only the
target adapter is scripted (no framework, no sandbox).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent.service.app import create_app
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import (API_TOKEN, GH_TOKEN, REPO, ScriptedGraphRunner, fake_tiny, make_service,
                                     wait_for)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def env(tmp_path, monkeypatch):
    import tools.tiny.model

    monkeypatch.setattr(tools.tiny.model, "build_tiny", fake_tiny(tmp_path))
    with FakeGitHubServer() as srv:
        srv.gh.token = GH_TOKEN
        service, _ = make_service(tmp_path, srv.url, lambda s, f: ScriptedGraphRunner(s, f, tmp_path))
        with TestClient(create_app(service)) as client:
            yield client, service, srv.gh


def start(client, text, rid):
    r = client.post("/chatops", json={"text": text, "request_id": rid}, headers=AUTH)
    assert r.status_code == 200 and r.json()["created"], r.text
    return r.json()["job"]["id"]


def test_chat_run_waits_for_approval_then_publishes(env):
    client, service, gh = env
    job_id = start(client, "/onboard newmodel", "a1")
    waiting = wait_for(lambda: (j := service.queue.get(job_id)).status == "awaiting_approval" and j, 60)
    assert not gh.open_pulls(REPO)  # nothing published before a human said yes
    snap = client.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert snap["stage"] == "review" and snap["thread_id"] == waiting.thread_id
    r = client.post(f"/jobs/{job_id}/approve", json={"approved": True, "by": "ann"}, headers=AUTH)
    assert r.status_code == 200
    done = wait_for(lambda: (j := service.queue.get(job_id)).status == "done" and j, 60)
    assert done.outcome == "pr" and done.runs == 2
    prs = gh.open_pulls(REPO)
    assert len(prs) == 1 and prs[0]["html_url"] == done.pr_url
    assert client.get(f"/jobs/{job_id}", headers=AUTH).json()["report"]["outcome"] == "pr"


def test_declined_run_publishes_nothing(env):
    client, service, gh = env
    job_id = start(client, "/onboard othermodel", "b1")
    wait_for(lambda: service.queue.get(job_id).status == "awaiting_approval", 60)
    client.post(f"/jobs/{job_id}/approve", json={"approved": False, "by": "ann"}, headers=AUTH)
    done = wait_for(lambda: (j := service.queue.get(job_id)).status == "done" and j, 60)
    assert done.outcome == "rejected" and "ann" in done.message and not gh.open_pulls(REPO)


def test_approve_flag_and_dry_run_need_no_approval(env):
    client, service, gh = env
    direct = start(client, "/onboard modela --approve", "c1")
    dry = start(client, "/onboard modelb --dry-run", "c2")
    a = wait_for(lambda: (j := service.queue.get(direct)).status == "done" and j, 60)
    b = wait_for(lambda: (j := service.queue.get(dry)).status == "done" and j, 60)
    assert a.outcome == "pr" and b.outcome == "dry_run"
    assert [p["head"]["ref"] for p in gh.open_pulls(REPO)] == ["onboard/optimum-intel/modela"]
