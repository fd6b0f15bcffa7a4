"""`onboard serve` says what is disabled and why; `bench service` drives the real server process."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from agent.cli.main import app


def clean_env(monkeypatch) -> dict:
    """No service, GitHub or sandbox settings from the caller's environment; uvicorn.run recorded, not run."""
    import uvicorn

    for key in [k for k in os.environ if k.startswith(("ONBOARD_SERVICE_", "ONBOARD_GITHUB_", "ONBOARD_SANDBOX"))]:
        monkeypatch.delenv(key)
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(kw, app=app))
    return started


def test_serve_refuses_the_local_sandbox_unless_allowed(tmp_path, monkeypatch):
    started = clean_env(monkeypatch)
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and not started
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX" in lines[0] and "docker" in lines[0]
    assert "Traceback" not in result.output and not (tmp_path / "service").exists()


def test_serve_with_auto_refuses_when_no_engine_answers_and_pins_docker_when_one_does(tmp_path, monkeypatch):
    import sandboxes.factory

    started = clean_env(monkeypatch)
    monkeypatch.setenv("ONBOARD_SANDBOX", "auto")
    monkeypatch.setattr(sandboxes.factory, "engine_status", lambda *a, **k: (None, "no Docker engine answers"))
    refused = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 2 and "ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX" in refused.output and not started
    monkeypatch.setattr(sandboxes.factory, "engine_status", lambda *a, **k: (object(), ""))
    served = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)])
    assert served.exit_code == 0, served.output
    # a later engine outage fails the job; it never falls back to the local backend
    assert started["app"].state.service.settings.sandbox == "docker"


def test_serve_on_defaults_names_the_disabled_endpoints(tmp_path, monkeypatch):
    started = clean_env(monkeypatch)
    monkeypatch.setenv("ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX", "1")
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", "9999"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for setting in ("ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET", "ONBOARD_SERVICE_SLACK_SIGNING_SECRET",
                    "ONBOARD_SERVICE_API_TOKEN"):
        assert setting in out
    assert "disabled" in out and started["port"] == 9999 and started["host"] == "127.0.0.1"


def test_serve_rejects_bad_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ONBOARD_SERVICE_CONCURRENCY", "99")
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "concurrency" in result.output


def test_bench_service_small_load_makes_one_job_per_unique_delivery():
    from agent.service.bench import run_bench

    result = run_bench(deliveries=20, clients=4, concurrency=1)
    assert result.unique == 10 and result.jobs == 10 and result.created == 10
    assert result.statuses == {202: 10, 200: 10} and not result.errors
