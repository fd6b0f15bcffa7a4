"""GitHubForge with the real PyGithub client against the fake REST server, and a real bare remote."""

from __future__ import annotations

import os
import subprocess

import git
import pytest

from tests.fakes.github_server import FakeGitHubServer
from tools.forge.local import Forge, branch_name
from tools.forge.github import GitHubConfig, GitHubForge, GitHubIssues, git_auth_env
from tools.repo.workspace import RepoManager, commit_all

TOKEN = "ghs_forge_secret_0123456789"
REPO = "acme/optimum-intel"


@pytest.fixture
def server():
    with FakeGitHubServer() as srv:
        srv.gh.token = TOKEN
        yield srv


@pytest.fixture
def setup(tmp_path, server):
    up = tmp_path / "up"
    repo = git.Repo.init(up, initial_branch="main")
    (up / "f.txt").write_text("base\n")
    base = commit_all(repo, "base")
    rm = RepoManager(tmp_path / "cache")
    wt = rm.worktree(rm.mirror(str(up)), base, tmp_path / "ws")
    (wt / "f.txt").write_text("base\nchanged\n")
    remotes = tmp_path / "remotes"
    git.Repo.init(remotes / f"{REPO}.git", bare=True, mkdir=True)
    config = GitHubConfig(token=TOKEN, api_url=server.url, repos={"optimum-intel": REPO},
                          push_url_template=str(remotes / "{repo}.git"), seconds_between_writes=0,
                          labels=["onboarder", "new-model"])
    forge = GitHubForge(config, tmp_path / "data")
    kw = dict(worktree=wt, base_rev=base, branch=branch_name("optimum-intel", "m"), title="Add m",
              body="## Verification\n| check | result |", target="optimum-intel", model_type="m",
              thread_id="tid", verification={"export": "passed"})
    return forge, kw, remotes / f"{REPO}.git", base


def test_is_a_forge(setup):
    assert isinstance(setup[0], Forge)


def test_publish_opens_one_draft_pr_then_updates_it(setup, server):
    forge, kw, remote, base = setup
    first = forge.publish(**kw)
    second = forge.publish(**{**kw, "body": "new body"})
    prs = server.gh.open_pulls(REPO)
    assert len(prs) == 1 and prs[0]["draft"] is True
    assert prs[0]["body"] == "new body"
    assert [lbl["name"] for lbl in prs[0]["labels"]] == ["onboarder", "new-model"]
    assert first.url == second.url == prs[0]["html_url"] and second.revision == 2
    head = git.Repo(remote).commit("refs/heads/onboard/optimum-intel/m")
    assert [p.hexsha for p in head.parents] == [base]
    assert len(forge.records()) == 1


def test_422_already_exists_updates_the_existing_pr(setup, server):
    forge, kw, _, _ = setup
    forge.publish(**kw)
    server.gh.stale_pull_lists = 1  # our lookup misses the PR, so create answers 422
    forge.publish(**{**kw, "body": "after race"})
    creates = [r for r in server.gh.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(creates) == 2  # the second create got the 422
    prs = server.gh.open_pulls(REPO)
    assert len(prs) == 1 and prs[0]["body"] == "after race"


def test_other_errors_are_not_swallowed(setup, server):
    forge, kw, _, _ = setup
    forge.config.repos["optimum-intel"] = "acme/missing"
    server.gh.token = "other"  # 401 from the API
    with pytest.raises(Exception) as info:
        forge.publish(**kw)
    assert TOKEN not in str(info.value)


def test_token_never_in_remote_record_or_request_bodies(setup, server, tmp_path):
    forge, kw, _, _ = setup
    record = forge.publish(**kw)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert files and all(TOKEN not in p.read_text() for p in files)
    assert TOKEN not in record.remote and TOKEN not in record.model_dump_json()
    assert all(TOKEN not in r.body and TOKEN not in r.path for r in server.gh.requests)
    ws_config = (kw["worktree"] / ".git").read_text() if (kw["worktree"] / ".git").is_file() else ""
    assert TOKEN not in ws_config


def test_credential_helper_hands_git_the_token(tmp_path):
    env = {**os.environ, **git_auth_env(TOKEN), "HOME": str(tmp_path)}
    out = subprocess.run(["git", "credential", "fill"], input="protocol=https\nhost=github.example\n\n",
                         capture_output=True, text=True, env=env, check=True).stdout
    assert "username=x-access-token" in out and f"password={TOKEN}" in out
    config = {k: v for k, v in git_auth_env(TOKEN).items() if k.startswith("GIT_CONFIG_")}
    assert "credential.helper" in config.values() and TOKEN not in "".join(config.values())  # read from the env


def test_issue_comments_are_upserted_by_marker(server):
    config = GitHubConfig(token=TOKEN, api_url=server.url, repos={}, seconds_between_writes=0)
    issues = GitHubIssues(config)
    number = server.gh.add_issue(REPO, "/onboard llama")
    issues.upsert_comment(REPO, number, "final:j1", "first")
    issues.upsert_comment(REPO, number, "final:j1", "second")
    issues.upsert_comment(REPO, number, "progress:j1", "running")
    bodies = [c["body"] for c in server.gh.issue_comments(REPO, number)]
    assert len(bodies) == 2 and bodies[0].startswith("second")


def test_permission_lookup(server):
    server.gh.permissions.update(alice="write", bob="read")
    issues = GitHubIssues(GitHubConfig(token=TOKEN, api_url=server.url, seconds_between_writes=0))
    assert issues.can_write(REPO, "alice") and not issues.can_write(REPO, "bob")
    assert not issues.can_write(REPO, "mallory")


def test_failed_attempt_branch_only_when_configured(setup, server):
    forge, kw, remote, base = setup
    assert forge.push_attempt(kw["worktree"], base, "optimum-intel", "m") is None
    assert "onboard/optimum-intel/m-attempt" not in [h.name for h in git.Repo(remote).heads]
    forge.config.push_failed_branches = True
    branch = forge.push_attempt(kw["worktree"], base, "optimum-intel", "m")
    assert branch in [h.name for h in git.Repo(remote).heads]
    assert server.gh.open_pulls(REPO) == []  # a branch to look at, never a PR


def test_github_app_installation_token_is_used_for_api_and_git(setup, server):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    server.gh.app_public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    old, kw, _, _ = setup
    config = GitHubConfig(**{**old.config.model_dump(), "token": None, "app_id": 42, "app_private_key": pem,
                             "installation_id": 7})
    assert config.has_credentials and pem in config.secrets()
    forge = GitHubForge(config, old.root)
    record = forge.publish(**kw)
    assert record.url == server.gh.open_pulls(REPO)[0]["html_url"]
    assert forge._auth.token == TOKEN  # the installation token, handed to git's credential helper
    assert any(r.path == "/app/installations/7/access_tokens" for r in server.gh.requests)


def test_runner_selects_the_github_forge_only_when_configured(tmp_path, monkeypatch, server):
    from agent.graph.run import select_forge
    from agent.settings import Settings
    from tools.forge.local import LocalForge

    for key in [k for k in os.environ if k.startswith("ONBOARD_GITHUB_")]:
        monkeypatch.delenv(key)
    settings = Settings(data_dir=tmp_path)
    assert isinstance(select_forge(settings), LocalForge)
    monkeypatch.setenv("ONBOARD_GITHUB_REPOS", '{"optimum-intel": "acme/optimum-intel"}')
    assert isinstance(select_forge(settings), LocalForge)  # repositories without credentials
    monkeypatch.setenv("ONBOARD_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("ONBOARD_GITHUB_API_URL", server.url)
    assert isinstance(select_forge(settings), GitHubForge)


def test_repository_without_draft_prs_gets_a_regular_one(setup, server):
    forge, kw, _, _ = setup
    server.gh.drafts_supported = False
    forge.publish(**kw)
    prs = server.gh.open_pulls(REPO)
    assert len(prs) == 1 and prs[0]["draft"] is False
