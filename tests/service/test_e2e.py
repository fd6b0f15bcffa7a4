"""The whole service on real optimum-intel: chat command, real graph, approval, a PR on (fake) GitHub.

Slow (a real tiny model, export and parity in the local sandbox, ~1 minute), so integration-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.service.app import build_service, create_app
from agent.service.settings import ServiceSettings
from agent.settings import Settings
from tests.fakes.github_server import FakeGitHubServer
from tests.fakes.service_env import API_TOKEN, GH_TOKEN, REPO, github_config, wait_for

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_chat_onboards_cwm_into_a_draft_pr_after_approval(tmp_path):
    cache = Path.home() / ".cache" / "onboarder" / "test-cache"
    settings = Settings(data_dir=tmp_path / "data", cache_dir=cache, sandbox="local")
    with FakeGitHubServer() as gh:
        gh.gh.token = GH_TOKEN
        svc = ServiceSettings(api_token=API_TOKEN, concurrency=1, allow_local_sandbox=True)  # opted in: a test
        service = build_service(settings, svc, github_config(gh.url, tmp_path))
        service.pool.poll_s = 0.1
        with TestClient(create_app(service)) as client:
            job = client.post("/chatops", json={"text": "/onboard cwm", "request_id": "e2e"}, headers=AUTH).json()
            waiting = wait_for(lambda: (j := service.queue.get(job["job"]["id"])).status != "queued"
                               and j.status != "running" and j, 600, 0.5)
            assert waiting.status == "awaiting_approval", waiting.message
            assert not gh.gh.open_pulls(REPO)
            client.post(f"/jobs/{waiting.id}/approve", json={"by": "e2e"}, headers=AUTH)
            done = wait_for(lambda: (j := service.queue.get(waiting.id)).status == "done" and j, 300, 0.5)
    assert done.outcome == "pr", done.message
    prs = gh.gh.open_pulls(REPO)
    assert len(prs) == 1 and prs[0]["draft"] and "logits_parity" in prs[0]["body"]
    assert str(tmp_path / "remotes") in prs[0]["body"]  # reproduce steps name the pushed remote
