"""Loaded into test worker processes before the CLI: scripted jobs and a pause right after a PR is written.

`scripted-*` models stand in for a graph run (sleep, then done) so the engine
tests (priority, de-duplication) stay fast; everything else is the real graph.
With ONBOARD_TEST_HOLD_AFTER_PUBLISH=<marker>, the first publish writes its PR
record for real, touches the marker and then waits, so the test can kill the
worker after the PR exists and before the graph checkpoints the publish node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.service.graph_runner import GraphRunner
from agent.service.workers import RunResult
from tools.forge.local import LocalForge

_run, _publish = GraphRunner.run, LocalForge.publish


def run(self, job, resume, on_stage, on_thread):
    if not str(job.request.get("model", "")).startswith("scripted-"):
        return _run(self, job, resume, on_stage, on_thread)
    if job.request.get("die"):  # like an OOM kill of the job process, every time
        os.kill(os.getpid(), 9)
    time.sleep(float(job.request.get("sleep_s", 1.0)))
    on_stage("scripted")
    return RunResult(status="done", outcome="scripted", message=f"ran on {os.getpid()}")


def publish(self, **kwargs):
    record = _publish(self, **kwargs)
    marker = os.environ.get("ONBOARD_TEST_HOLD_AFTER_PUBLISH")
    if marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        time.sleep(600)
    return record


GraphRunner.run, LocalForge.publish = run, publish
