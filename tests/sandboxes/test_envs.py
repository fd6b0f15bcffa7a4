"""An environment's image tag follows what the image is built from, and nothing else."""

from __future__ import annotations

from sandboxes.envs import SandboxEnv


def _env(tmp_path) -> SandboxEnv:
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY requirements.lock /tmp/\n")
    (tmp_path / "requirements.lock").write_text("torch==2.13.0\n")
    (tmp_path / "verify.py").write_text("print('job')\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    return SandboxEnv(name="t", dir=tmp_path)


def test_job_code_is_not_a_build_input(tmp_path):
    env = _env(tmp_path)
    tag = env.image
    (tmp_path / "verify.py").write_text("print('job, changed')\n")
    (tmp_path / "helpers.py").write_text("X = 2\n")  # mounted at run time like verify.py
    assert env.image == tag


def test_the_lock_and_dockerfile_are(tmp_path):
    env = _env(tmp_path)
    tag = env.image
    (tmp_path / "requirements.lock").write_text("torch==2.14.1\n")
    assert env.image != tag
    tag = env.image
    (tmp_path / "Dockerfile").write_text("FROM other\n")
    assert env.image != tag and env.image.startswith("onboarder-t:")
