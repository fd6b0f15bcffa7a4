"""The real job runner: prepare the request, drive the graph, read the outcome.

A job that already has a thread id and a checkpoint resumes it instead of
preparing again (the target's head may have moved, which would change the id).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from tools.errors import UserError
from agent.service.queue import Job
from agent.service.workers import RunResult
from agent.settings import Settings
from tools.forge.local import Forge

log = logging.getLogger(__name__)


class GraphRunner:
    def __init__(self, settings: Settings, forge_factory: Callable[[], Forge] | None = None,
                 target_repos: dict[str, str] | None = None):
        self.settings = settings
        self.forge_factory = forge_factory
        self.target_repos = target_repos or {}

    def run(self, job: Job, resume: dict | None, on_stage: Callable[[str], None],
            on_thread: Callable[[str], None]) -> RunResult:
        from agent.graph.request import Request, prepare
        from agent.graph.run import drive, make_deps, stored_state

        req = job.request
        progress = lambda msg: log.info("job %s: %s", job.id, msg)  # noqa: E731
        if job.thread_id and stored_state(self.settings, job.thread_id):
            thread_id, initial = job.thread_id, None
        else:
            # Chat and issue text never names a file on this machine, even one that happens to exist.
            if Path(req["model"]).expanduser().exists():
                raise UserError(f"{req['model']!r} names a local path; give a model_type or a Hub id")
            request = Request(model=req["model"], target=req["target"], repo=self.target_repos.get(req["target"]))
            prepared = prepare(request, self.settings, progress)
            thread_id, initial = prepared.thread_id, prepared.initial_state
            initial["request"]["publish"] = req.get("publish", "auto")
            for key in ("issue_text", "chat_text"):  # quoted into the LLM prompt as untrusted data
                if req.get(key):
                    initial["request"][key] = req[key]
            on_thread(thread_id)
        forge = self.forge_factory() if self.forge_factory else None
        deps = make_deps(self.settings, req["target"], progress, forge=forge)

        def on_node(node: str, update) -> None:
            if not node.startswith("__"):
                on_stage(node)

        values, how = drive(self.settings, deps, thread_id, initial, on_node, resume=resume)
        if how == "interrupted":
            return RunResult(status="awaiting_approval", thread_id=thread_id,
                             message="verified; waiting for approval before publishing")
        outcome, message = values.get("outcome", ""), values.get("message", "")
        if outcome in ("refused", "needs_llm", "error"):
            message += self._keep_attempt(deps.forge, values)
        pr = values.get("pr") or {}
        return RunResult(status="done", thread_id=thread_id, outcome=outcome, message=message,
                         pr_url=pr.get("url", "") if outcome == "pr" else "")

    @staticmethod
    def _keep_attempt(forge, values: dict) -> str:
        push = getattr(forge, "push_attempt", None)
        ws = values.get("workspace") or {}
        if push is None or not ws.get("path") or not values.get("model_type"):
            return ""
        try:
            branch = push(Path(ws["path"]), ws["base_rev"], values["request"]["target"], values["model_type"])
        except Exception as exc:  # the outcome stands without the branch
            log.warning("could not push the failed attempt: %s", exc)
            return ""
        return f" (last attempt pushed to branch {branch}, no PR)" if branch else ""
