"""GitHub forge: push the branch over HTTPS, open or update one draft PR per target + model.

Same `Forge` protocol as `LocalForge`, and the same record files under the
data dir, so `onboard prs` lists GitHub PRs too. The token reaches git only
through a credential helper that reads it from the child's environment: it is
never part of a remote URL, an argv, a log line, a record or the state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import git
from github import Auth, Github, GithubException, GithubRetry
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.forge.local import PRRecord, RecordStore, StoredRecords
from tools.repo.git_safe import git_env, open_worktree
from tools.repo.shared_commit import change_parent
from tools.repo.workspace import commit_all

log = logging.getLogger(__name__)

# Reads the token from the environment at the moment git asks; `get` only, so
# `store`/`erase` from other helpers never see it.
_HELPER = ("!f() { test \"$1\" = get && printf 'username=x-access-token\\npassword=%s\\n' "
           "\"$ONBOARD_GIT_TOKEN\"; }; f")
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


class GitHubConfig(BaseSettings):
    """Where and how to talk to GitHub (env ONBOARD_GITHUB_*; dicts and lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="ONBOARD_GITHUB_", extra="forbid")

    token: SecretStr | None = None
    app_id: int | None = None
    app_private_key: SecretStr | None = None
    installation_id: int | None = None
    api_url: str = "https://api.github.com"  # GitHub Enterprise: https://HOST/api/v3
    # target -> "owner/name" the PRs are opened against, and (optionally) the fork pushed to.
    repos: dict[str, str] = Field(default_factory=dict)
    push_repos: dict[str, str] = Field(default_factory=dict)
    push_url_template: str = "https://github.com/{repo}.git"
    base_branch: str | None = None  # default: the repository's default branch
    labels: list[str] = Field(default_factory=lambda: ["onboarder"])
    draft: bool = True
    push_failed_branches: bool = False
    timeout_s: int = 30
    # PyGithub throttles writes to 1/s by default (GitHub's secondary rate limits); tests set 0.
    seconds_between_writes: float = 1.0

    @property
    def has_credentials(self) -> bool:
        return bool(self.token) or bool(self.app_id and self.app_private_key and self.installation_id)

    @property
    def configured(self) -> bool:
        return self.has_credentials and bool(self.repos)

    def repo_for(self, target: str) -> str:
        try:
            return self.repos[target]
        except KeyError:
            raise LookupError(f"no GitHub repository configured for target {target!r} "
                              f"(ONBOARD_GITHUB_REPOS)") from None

    def push_repo_for(self, target: str) -> str:
        return self.push_repos.get(target) or self.repo_for(target)

    def secrets(self) -> list[str]:
        """Secret values, for log masking and the tests that scan outputs."""
        return [s.get_secret_value() for s in (self.token, self.app_private_key) if s]


def make_auth(config: GitHubConfig) -> Auth.Auth:
    if config.token:
        return Auth.Token(config.token.get_secret_value())
    if config.has_credentials:
        app = Auth.AppAuth(config.app_id, config.app_private_key.get_secret_value())
        return app.get_installation_auth(config.installation_id)
    raise LookupError("GitHub is not configured: set ONBOARD_GITHUB_TOKEN or the App id, key and installation")


def make_client(config: GitHubConfig, auth: Auth.Auth | None = None) -> Github:
    return Github(auth=auth or make_auth(config), base_url=config.api_url.rstrip("/"),
                  timeout=config.timeout_s, retry=GithubRetry(total=3), lazy=True,
                  seconds_between_requests=None, seconds_between_writes=config.seconds_between_writes or None)


def git_auth_env(token: str | None) -> dict[str, str]:
    """Environment for a git child process that authenticates HTTPS with `token`."""
    if not token:
        return git_env()
    # The empty first value clears any other helper, so none of them stores it.
    return git_env(("credential.helper", ""), ("credential.helper", _HELPER), ONBOARD_GIT_TOKEN=token)


def _says(exc: GithubException, words: str) -> bool:
    """A 422 whose message (or one of its errors) contains `words`."""
    if exc.status != 422:
        return False
    data = exc.data if isinstance(exc.data, dict) else {}
    messages = [str(data.get("message", ""))] + [str(e.get("message", "")) for e in data.get("errors", [])
                                                  if isinstance(e, dict)]
    return any(words in m.lower() for m in messages)


class GitHubForge(StoredRecords):
    name = "github"

    def __init__(self, config: GitHubConfig, data_dir: Path, client: Github | None = None,
                 auth: Auth.Auth | None = None):
        self.config = config
        self.root = data_dir
        self.store = RecordStore(data_dir)
        self._auth = auth or make_auth(config)
        self.client = client or make_client(config, self._auth)

    # --- Forge protocol (find/records come from StoredRecords) ---
    def publish(self, *, worktree, base_rev, branch, title, body, target, model_type, thread_id,
                verification, subject="") -> PRRecord:
        repo = open_worktree(worktree)
        # A resumed publish re-creates the same single commit rather than stacking a second one.
        repo.git.reset("-q", "--soft", change_parent(worktree, base_rev))
        head = commit_all(repo, f"{title}\n\nGenerated and verified by Onboarder (thread {thread_id}).")
        push_url = self.push_branch(worktree, target, branch)
        gh_repo = self.client.get_repo(self.config.repo_for(target))
        base = self.config.base_branch or gh_repo.default_branch
        owner = self.config.push_repo_for(target).split("/")[0]
        pr, action = self._upsert(gh_repo, f"{owner}:{branch}", base, title, body)
        if self.config.labels:
            pr.add_to_labels(*self.config.labels)
        log.info("pull request %s %s (%s)", action, pr.html_url, branch)
        diff = repo.git.diff(base_rev, head, "--no-color", "--no-ext-diff", "--no-textconv")
        return self._write_record(target=target, model_type=model_type, subject=subject or model_type,
                                  title=title, branch=branch,
                                  remote=push_url, base_rev=base_rev, head_rev=head, url=pr.html_url,
                                  body=body, diff=diff, thread_id=thread_id, verification=verification)

    def public_remote(self, target: str) -> str:
        """The URL reviewers fetch the branch from (the PR body's reproduce steps)."""
        return self.config.push_url_template.format(repo=self.config.push_repo_for(target))

    # --- pieces ---
    def push_branch(self, worktree: Path, target: str, branch: str) -> str:
        """Force-push HEAD to `branch` of the push repository; returns the (token-free) URL."""
        url = self.public_remote(target)
        token = getattr(self._auth, "token", None)
        open_worktree(worktree).git.push("-q", "--force", url, f"HEAD:refs/heads/{branch}", env=git_auth_env(token))
        return url

    def push_attempt(self, worktree: Path, base_rev: str, target: str, model_type: str) -> str | None:
        """Keep a failed run's last attempt on a branch (no PR) when configured; returns the branch."""
        if not self.config.push_failed_branches:
            return None
        repo = open_worktree(worktree)
        repo.git.reset("-q", "--soft", change_parent(worktree, base_rev))
        commit_all(repo, f"Unverified attempt: {model_type} in {target}\n\nDid not pass Onboarder's checks.")
        branch = f"onboard/{target}/{model_type}-attempt"
        self.push_branch(worktree, target, branch)
        return branch

    def _upsert(self, gh_repo, head_label: str, base: str, title: str, body: str):
        existing = self._open_pull(gh_repo, head_label, base)
        if existing is not None:
            existing.edit(title=title, body=body)
            return existing, "updated"
        try:
            return self._create(gh_repo, head_label, base, title, body), "opened"
        except GithubException as exc:
            if not _says(exc, "already exists"):
                raise
        # Someone (a concurrent or earlier run) opened it after our lookup: update theirs.
        existing = self._open_pull(gh_repo, head_label, base)
        if existing is None:
            raise RuntimeError(f"GitHub says a PR for {head_label} exists, but none is open against {base}")
        existing.edit(title=title, body=body)
        return existing, "updated"

    def _create(self, gh_repo, head_label: str, base: str, title: str, body: str):
        try:
            return gh_repo.create_pull(title=title, body=body, head=head_label, base=base, draft=self.config.draft)
        except GithubException as exc:
            # Some plans and GHE versions have no draft PRs; an open PR still waits for review.
            if not (self.config.draft and _says(exc, "draft")):
                raise
            log.info("draft pull requests are not supported there; opening a regular one")
            return gh_repo.create_pull(title=title, body=body, head=head_label, base=base, draft=False)

    @staticmethod
    def _open_pull(gh_repo, head_label: str, base: str):
        for pr in gh_repo.get_pulls(state="open", head=head_label, base=base):
            return pr
        return None

    def _write_record(self, **fields) -> PRRecord:
        return self.store.write(**fields)


class GitHubIssues:
    """Issue-side calls the service makes: permission lookups and marker-keyed comments."""

    def __init__(self, config: GitHubConfig, client: Github | None = None):
        self.config = config
        self.client = client or make_client(config)

    def permission(self, repo: str, login: str) -> str:
        try:
            return self.client.get_repo(repo).get_collaborator_permission(login)
        except GithubException as exc:
            if exc.status in (403, 404):  # not a collaborator, or we cannot see: treat as no access
                return "none"
            raise

    def can_write(self, repo: str, login: str) -> bool:
        return self.permission(repo, login) in WRITE_PERMISSIONS

    def upsert_comment(self, repo: str, number: int, marker: str, body: str) -> str:
        """One comment per marker: edited when it exists, so retries and restarts never add a second."""
        issue = self.client.get_repo(repo).get_issue(number)
        tag = f"<!-- onboarder:{marker} -->"
        text = f"{body}\n\n{tag}"
        for comment in issue.get_comments():
            if tag in (comment.body or ""):
                if comment.body != text:
                    comment.edit(text)
                return comment.html_url
        return issue.create_comment(text).html_url
