"""With no broker or checkpoint URL, nothing of scale mode is imported and the embedded backends are used."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agent.scale.settings import backend
from tests import TESTS
from tools.errors import UserError

SCALE_MODULES = ("celery", "kombu", "psycopg", "psycopg_pool", "langgraph.checkpoint.postgres", "agent.scale.ledger",
                 "agent.scale.celery_app", "agent.scale.pg", "agent.scale.attempts", "agent.scale.nightly_job")

PROBE = """
import json, sys
from pathlib import Path
from agent.cli import main  # every command module is mounted at import
from agent.service.app import build_service
from agent.service.settings import ServiceSettings
from agent.settings import Settings
from agent.graph.run import stored_state, thread_lock
from agent.nightly.store import open_store
from tools.forge.github import GitHubConfig

data = Path(sys.argv[1])
s = Settings(data_dir=data)
svc = build_service(s, ServiceSettings(allow_local_sandbox=True), GitHubConfig(), start_workers=False)
job, _ = svc.queue.enqueue(trigger_key="t", subject="optimum-intel|cwm", source="chat", request={"model": "cwm",
                           "target": "optimum-intel"}, reply={})
with thread_lock(s, "some-thread"):
    pass
stored_state(s, "some-thread")
store = open_store(data, "optimum-intel")
with store.sweep_lock(), store.type_lock("cwm"):
    pass
print(json.dumps({"queue": type(svc.queue).__name__, "queue_file": str(svc.queue.path),
                  "publish": svc.pool.publish is not None, "concurrency": svc.pool.concurrency,
                  "lock_file": (data / "locks" / "some-thread.lock").exists(), "store": type(store).__name__,
                  "store_locks": (data / "nightly" / "optimum-intel" / "sweep.lock").exists(),
                  "loaded": [m for m in %r if m in sys.modules]}))
""" % (SCALE_MODULES,)


def test_the_default_path_imports_no_scale_module_and_uses_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    env["PYTHONPATH"] = str(TESTS.parent)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=TESTS.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["queue"] == "JobQueue" and out["queue_file"].endswith("service/jobs.sqlite")
    assert out["publish"] is False and out["concurrency"] == 1
    assert out["lock_file"] is True  # the thread lock is still the file lock
    assert out["store"] == "AttemptStore" and out["store_locks"] is True  # nightly attempts: files, flocks


def test_backend_urls_are_checked_in_one_line():
    assert not backend({}).distributed
    both = backend({"ONBOARD_BROKER_URL": "amqp://guest@127.0.0.1:5672//",
                    "ONBOARD_CHECKPOINT_URL": "postgresql://u@127.0.0.1/onboard"})
    assert both.distributed
    with pytest.raises(UserError, match="ONBOARD_CHECKPOINT_URL is not"):
        backend({"ONBOARD_BROKER_URL": "amqp://x"})
    with pytest.raises(UserError, match="postgresql://"):
        backend({"ONBOARD_CHECKPOINT_URL": "sqlite:///x"})
    with pytest.raises(UserError, match="amqp:// or redis://"):
        backend({"ONBOARD_BROKER_URL": "http://x", "ONBOARD_CHECKPOINT_URL": "postgresql://u@h/db"})
    assert backend({"ONBOARD_CHECKPOINT_URL": "postgresql://u@h/db"}).checkpoint_url  # checkpoints alone: fine


def test_the_worker_command_needs_scale_mode():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    env["PYTHONPATH"] = str(TESTS.parent)
    proc = subprocess.run([sys.executable, "-c", "from agent.cli.main import main; main()", "worker"],
                          capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=120)
    assert proc.returncode == 2
    assert "needs ONBOARD_BROKER_URL and ONBOARD_CHECKPOINT_URL" in proc.stderr
    assert "Traceback" not in proc.stderr


def _cli(*args: str, **env_extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    env.update(PYTHONPATH=str(TESTS.parent), **env_extra)
    return subprocess.run([sys.executable, "-c", "from agent.cli.main import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=TESTS.parent, timeout=120)


@pytest.mark.parametrize("args, why", [
    (("nightly", "--device", "gpu"), "--device needs --enqueue"),
    (("nightly", "--enqueue"), "--enqueue needs ONBOARD_BROKER_URL and ONBOARD_CHECKPOINT_URL"),
    (("bench", "scale", "--only", "a,b,c"), "at least 8 types"),
    (("bench", "scale", "--workers", "1,x"), "comma-separated integers"),
])
def test_scale_commands_refuse_bad_input_in_one_line(tmp_path, args, why):
    proc = _cli(*args, "--data-dir", str(tmp_path)) if args[0] == "nightly" else _cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert why in proc.stderr and "Traceback" not in proc.stderr


def test_a_worker_whose_postgres_is_unreachable_stops_in_one_line():
    pytest.importorskip("celery", reason="scale mode not installed: pip install -r requirements-scale.lock")
    pytest.importorskip("psycopg", reason="scale mode not installed: pip install -r requirements-scale.lock")
    proc = _cli("worker", "-n", "t@x", ONBOARD_BROKER_URL="amqp://u:p@127.0.0.1:1//",
                ONBOARD_CHECKPOINT_URL="postgresql://nobody@127.0.0.1:1/x")
    assert proc.returncode == 2 and "cannot reach the Postgres at ONBOARD_CHECKPOINT_URL" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
