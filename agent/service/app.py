"""The HTTP face: chat-ops, GitHub webhooks, the jobs API and health, over one queue.

Every route that acts answers from the queue alone (a few milliseconds);
graph runs happen in the worker threads started with the app. Routes whose
secret is not configured answer 503 and say which setting is missing. Callers
are authenticated before their bodies are parsed (bearer routes: before they
are read), and bodies are capped and timed (agent.service.http_limits).
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agent.service import github_webhook, slack
from agent.service.dispatch import Dispatcher, body_key, group_jobs, loads
from agent.service.http_limits import BodyLimits
from agent.service.notify import CallbackChannel, GitHubChannel, Notifier
from agent.service.queue import JobQueue
from agent.service.sandbox_guard import serving_settings
from agent.llm.settings import LLMSettings
from agent.llm.redact import Redactor, install, uninstall
from agent.service.settings import ServiceSettings, endpoint_status
from agent.service.workers import JobRunner, WorkerPool
from agent.settings import Settings
from tools.forge.github import GitHubConfig, GitHubForge, GitHubIssues

log = logging.getLogger("onboard.service")


@dataclass
class Service:
    settings: Settings
    svc: ServiceSettings
    gh: GitHubConfig
    queue: JobQueue
    pool: WorkerPool
    dispatcher: Dispatcher
    redact: Redactor
    start_workers: bool = True
    clock: Callable[[], float] = field(default=time.time)


def build_service(settings: Settings, svc: ServiceSettings, gh: GitHubConfig, *, runner: JobRunner | None = None,
                  issues: GitHubIssues | None = None, start_workers: bool = True,
                  clock: Callable[[], float] = time.time) -> Service:
    from tools.targets import names as target_names

    from agent.scale.settings import backend

    settings = serving_settings(settings, svc.allow_local_sandbox)  # before anything is written
    scale = backend()
    publish = None
    if scale.distributed:  # the ledger in Postgres, jobs on Celery workers (agent.scale)
        from agent.scale.ledger import PgJobQueue
        from agent.scale.publish import Publisher

        queue = PgJobQueue(scale.checkpoint_url)
        publish = Publisher(queue, scale.broker_url).publish_queued
    else:
        queue = JobQueue(svc.queue_path or settings.path("service", "jobs.sqlite"))
    llm = LLMSettings()
    llm_key = [llm.api_key.get_secret_value()] if llm.api_key else []
    redact = Redactor(extra=svc.secrets() + gh.secrets() + llm_key)
    if issues is None and gh.has_credentials:
        issues = GitHubIssues(gh)
    github = GitHubChannel(issues, svc.permission_cache_s) if issues else None
    if runner is None:
        from agent.service.graph_runner import GraphRunner

        runner = GraphRunner(settings, (lambda: GitHubForge(gh, settings.data_dir)) if gh.configured else None,
                             svc.target_repos)
    if publish:  # a Celery worker's nightly jobs record attempts and spend the night's budget in Postgres
        from agent.scale.nightly_job import NightlyRecorder

        runner = NightlyRecorder(runner, settings, scale.checkpoint_url)
    notifier = Notifier(github, CallbackChannel(svc.callback_hosts), group_jobs=lambda g: group_jobs(queue, g))
    pool = WorkerPool(queue, runner, notifier,
                      concurrency=0 if publish else svc.concurrency, authorizer=github.can_write if github else None,
                      redact=redact, publish=publish)
    dispatcher = Dispatcher(queue, set(target_names()), svc.default_target, svc.github_label, github,
                            wake=pool.wake, redact=redact)
    return Service(settings, svc, gh, queue, pool, dispatcher, redact, start_workers, clock)


class ChatRequest(BaseModel):
    text: str = Field(max_length=1000)
    user: str = Field("api", max_length=100)
    request_id: str | None = Field(None, max_length=200)  # the caller's idempotency key
    callback_url: str | None = Field(None, max_length=500)


class Decision(BaseModel):
    approved: bool = True
    by: str = Field("api", max_length=100)


# The handlers read raw bodies (signatures cover the exact bytes), so the schema is declared here.
_SLACK_FORM = {"type": "object", "properties": {k: {"type": "string"} for k in (
    "command", "text", "team_id", "user_id", "user_name", "trigger_id", "response_url")}}
_CHAT_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": _SLACK_FORM},
    "application/json": {"schema": ChatRequest.model_json_schema()}}}}
_GITHUB_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "a GitHub webhook payload (issues, issue_comment, ping)"}}}}}
_DECISION_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": Decision.model_json_schema()}}}}


def _disabled(setting: str, why: str) -> HTTPException:
    return HTTPException(503, f"disabled: {setting} is not set ({why})")


def create_app(service: Service) -> FastAPI:
    svc, queue, dispatcher = service.svc, service.queue, service.dispatcher

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        install(service.redact)
        off = [e.route for e in endpoint_status(svc, service.gh) if not e.enabled]
        if off:
            log.warning("disabled (GET /healthz says why): %s", "; ".join(off))
        if service.start_workers:
            service.pool.start()
        scheduler = None
        if svc.nightly:
            from agent.service.scheduler import start_nightly

            scheduler = start_nightly(service.settings)
        app.state.scheduler = scheduler
        yield
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        service.pool.stop()
        dispatcher.background.shutdown(wait=False)
        uninstall(service.redact)

    app = FastAPI(title="Onboarder", version="0.1.0", lifespan=lifespan,
                  description="Onboard new Hugging Face architectures into ML frameworks, verified end to end.")
    app.state.service = service
    app.add_middleware(BodyLimits, max_bytes=svc.max_body_bytes, timeout_s=svc.body_timeout_s)

    def require_api(request: Request) -> None:
        if svc.api_token is None:
            raise _disabled("ONBOARD_SERVICE_API_TOKEN", "callers cannot be authenticated")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {svc.api_token.get_secret_value()}".encode()):
            raise HTTPException(401, "bad or missing bearer token")

    api = [Depends(require_api)]  # a dependency runs before query parameters are validated

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "jobs": queue.count(), "concurrency": service.pool.concurrency,
                "disabled": {e.route: e.why for e in endpoint_status(svc, service.gh) if not e.enabled}}

    @app.post("/chatops", openapi_extra=_CHAT_BODY)
    async def chatops(request: Request) -> dict:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            text, trigger, reply, user = await _slack(request)
        elif ctype.startswith("application/json"):
            require_api(request)
            body = await request.body()
            try:
                chat = ChatRequest.model_validate(loads(body))
            except ValueError as exc:
                raise HTTPException(422, f"bad chat request: {str(exc)[:200]}") from None
            text, user = chat.text, chat.user
            trigger = f"chat:{chat.request_id or body_key(body)}"
            reply = {"kind": "callback", "url": chat.callback_url} if chat.callback_url else {}
        else:
            raise HTTPException(415, "send a Slack form or JSON")
        answer = await run_in_threadpool(dispatcher.command, text, source="chat", trigger_key=trigger,
                                         reply=reply, user=user)
        return {"response_type": "ephemeral", "text": answer.text,
                "job": answer.job.public() if answer.job else None, "created": answer.created}

    async def _slack(request: Request) -> tuple[str, str, dict, str]:
        if svc.slack_signing_secret is None:
            raise _disabled("ONBOARD_SERVICE_SLACK_SIGNING_SECRET", "Slack requests cannot be verified")
        if not request.headers.get("x-slack-signature"):
            raise HTTPException(401, "invalid Slack signature or timestamp")
        body = await request.body()  # the signature covers the exact bytes (capped by BodyLimits)
        why = slack.verify(svc.slack_signing_secret.get_secret_value(),
                           request.headers.get("x-slack-request-timestamp"), body,
                           request.headers.get("x-slack-signature"), service.clock(), svc.slack_window_s)
        if why:
            log.info("Slack request refused: %s", why)
            raise HTTPException(401, "invalid Slack signature or timestamp")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        trigger = f"slack:{form.get('team_id', '')}:{form.get('trigger_id') or body_key(body)}"
        reply = {"kind": "callback", "url": form["response_url"]} if form.get("response_url") else {}
        return form.get("text", ""), trigger, reply, form.get("user_name") or form.get("user_id") or "slack"

    @app.post("/webhooks/github", status_code=202, openapi_extra=_GITHUB_BODY)
    async def github(request: Request):
        if svc.github_webhook_secret is None:
            raise _disabled("ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET", "deliveries cannot be verified")
        signature = request.headers.get("x-hub-signature-256")
        if not signature:
            raise HTTPException(401, "invalid X-Hub-Signature-256")
        body = await request.body()
        # Verify before anything is stored: unsigned requests must not fill the de-dup table either.
        if not github_webhook.verify(svc.github_webhook_secret.get_secret_value(), body, signature):
            raise HTTPException(401, "invalid X-Hub-Signature-256")
        delivery = request.headers.get("x-github-delivery", "")
        event = request.headers.get("x-github-event", "")
        if not delivery or len(delivery) > 100:
            raise HTTPException(400, "missing X-GitHub-Delivery")
        try:
            payload = loads(body)
        except ValueError:
            raise HTTPException(400, "body is not a JSON object") from None
        return await run_in_threadpool(_delivery, event, payload, body)

    def _delivery(event: str, payload: dict, body: bytes):
        # The delivery id is not signed: replays are recognised by what the signature covers.
        key = github_webhook.delivery_key(event, payload, body)
        if not queue.record_delivery(key):
            return JSONResponse({"duplicate": True}, status_code=200)
        if event == "ping":
            return {"pong": True}
        try:
            return dispatcher.github_delivery(event, payload)
        except Exception:
            queue.forget_delivery(key)  # let GitHub's redelivery try again
            raise

    @app.get("/jobs", dependencies=api)
    def list_jobs(status: str | None = None, limit: int = 100) -> list[dict]:
        # The operator's view says who runs what (a thread here, name@host of a Celery worker in scale mode);
        # chat and issue answers do not name hosts.
        return [{**j.public(), "worker": j.worker} for j in queue.list(min(max(limit, 1), 1000), status)]

    @app.get("/jobs/{job_id}", dependencies=api)
    def get_job(job_id: str) -> dict:
        job = queue.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        report = service.settings.path("jobs", job.thread_id, "report.json") if job.thread_id else None
        return {**job.public(), "worker": job.worker, "report": _read_json(report)}

    @app.post("/jobs/{job_id}/approve", dependencies=api, openapi_extra=_DECISION_BODY)
    async def approve(job_id: str, request: Request) -> dict:
        body = await request.body()  # read only once the token is checked
        try:
            decision = Decision.model_validate(loads(body or b"null"))  # an empty body is not a decision
        except ValueError:
            raise HTTPException(422, 'expected a JSON object like {"approved": true, "by": "name"}') from None
        return await run_in_threadpool(_approve, job_id, decision)

    def _approve(job_id: str, decision: Decision) -> dict:
        try:
            job = queue.approve(job_id, decision.model_dump())
        except KeyError:
            raise HTTPException(404, f"no job {job_id}") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        service.pool.wake()
        return job.public()

    @app.post("/jobs/{job_id}/cancel", dependencies=api)
    def cancel(job_id: str) -> dict:
        try:
            job = queue.cancel(job_id)
        except KeyError:
            raise HTTPException(404, f"no job {job_id}") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        service.pool.wake()
        return job.public()

    return app


def _read_json(path) -> dict | None:
    import json

    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
