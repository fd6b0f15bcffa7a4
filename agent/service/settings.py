"""Service settings (env ONBOARD_SERVICE_*) and which endpoints they enable.

Every endpoint that acts on a request needs its secret; without it the
endpoint is disabled (fail closed) and `endpoint_status` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.forge.github import GitHubConfig
from tools.targets import DEFAULT_TARGET


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARD_SERVICE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    # Jobs run at the same time in this process (each one a graph run with its own sandbox).
    concurrency: int = Field(1, ge=0, le=16)
    queue_path: Path | None = None  # default: DATA_DIR/service/jobs.sqlite
    slack_signing_secret: SecretStr | None = None
    slack_window_s: int = 300  # Slack's own replay window
    # Bearer token for the JSON chat form and the /jobs API.
    api_token: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    github_label: str = "onboard"
    default_target: str = DEFAULT_TARGET
    # target -> repository URL or path to clone (default: the target's upstream); chat text never picks it.
    target_repos: dict[str, str] = Field(default_factory=dict)
    # Hosts progress may be posted to (Slack's response_url, chat callbacks): no arbitrary URLs.
    callback_hosts: list[str] = Field(default_factory=lambda: ["hooks.slack.com"])
    permission_cache_s: float = 60.0
    # Run the nightly sweep (ONBOARD_NIGHTLY_* settings) on its cron inside this process.
    nightly: bool = False
    # Serve even when jobs would run in the local sandbox backend (weaker isolation than docker).
    allow_local_sandbox: bool = False
    # What an unauthenticated client can hold (checked before any signature or token).
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)  # larger: 413 before reading
    body_timeout_s: float = Field(10.0, gt=0, le=600)  # the whole body, from the end of the headers: else 408
    header_timeout_s: float = Field(10.0, gt=0, le=600)  # a request's headers, from connect or the last response
    keep_alive_s: int = Field(5, ge=1, le=600)  # idle keep-alive connections are closed after this
    max_connections: int = Field(100, ge=2, le=10_000)  # open connections; requests beyond get 503
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)  # request line + headers

    def secrets(self) -> list[str]:
        return [s.get_secret_value() for s in (self.slack_signing_secret, self.api_token,
                                               self.github_webhook_secret) if s]


@dataclass(frozen=True)
class Endpoint:
    route: str
    enabled: bool
    why: str


def endpoint_status(svc: ServiceSettings, gh: GitHubConfig) -> list[Endpoint]:
    api = svc.api_token is not None
    slack = svc.slack_signing_secret is not None
    hook = svc.github_webhook_secret is not None
    return [
        Endpoint("GET /healthz, GET /docs, GET /openapi.json", True, "always on"),
        Endpoint("POST /chatops (Slack form)", slack,
                 "signing secret set" if slack else "ONBOARD_SERVICE_SLACK_SIGNING_SECRET not set: "
                 "Slack requests cannot be verified"),
        Endpoint("POST /chatops (JSON, bearer)", api,
                 "API token set" if api else "ONBOARD_SERVICE_API_TOKEN not set: callers cannot be authenticated"),
        Endpoint("GET /jobs, GET /jobs/{id}, POST /jobs/{id}/approve|cancel", api,
                 "API token set" if api else "ONBOARD_SERVICE_API_TOKEN not set: callers cannot be authenticated"),
        Endpoint("POST /webhooks/github", hook,
                 "webhook secret set" if hook else "ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET not set: "
                 "deliveries cannot be verified"),
        Endpoint("GitHub issue/comment commands", hook and gh.has_credentials,
                 "senders' write permission is checked" if gh.has_credentials else
                 "no GitHub credentials (ONBOARD_GITHUB_TOKEN or App): senders' write permission cannot be "
                 "checked, so commands from issues and comments are dropped"),
        Endpoint("Nightly sweep (scheduler)", svc.nightly,
                 "on its ONBOARD_NIGHTLY_CRON schedule" if svc.nightly else "ONBOARD_SERVICE_NIGHTLY is off"),
        Endpoint("Pull requests on GitHub", gh.configured,
                 "GitHub forge" if gh.configured else "ONBOARD_GITHUB_TOKEN/REPOS not set: PR records go to "
                 "the local forge under the data dir"),
    ]
