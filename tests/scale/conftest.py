from __future__ import annotations

import pytest

from tests.scale.cluster import Cluster, require_scale_stack


@pytest.fixture(scope="session")
def cluster():
    require_scale_stack()
    from agent.scale.servers import Postgres, RabbitMQ, ServerUnavailable

    import os
    import shutil
    import tempfile
    from pathlib import Path

    # Not under pytest's tmp dir: that is 0700 root, and the servers run as their own users.
    root = Path(tempfile.mkdtemp(prefix="onboard-scale-"))
    os.chmod(root, 0o755)
    pg = Postgres(root / "pg")
    mq = RabbitMQ(root / "mq")
    try:
        pg.start()
        mq.start()
    except (ServerUnavailable, OSError, TimeoutError) as exc:
        mq.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"servers cannot start here: {exc}")
    c = Cluster(root, pg, mq)
    try:
        yield c
    finally:
        c.stop_all()
        mq.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stop_workers(cluster):
    yield
    cluster.stop_all()


def pytest_collection_modifyitems(config, items):
    # Servers take ~20 s to start and the kill tests minutes: only a run that asks for them (-m scale) starts them.
    if "scale" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="scale tests start RabbitMQ and Postgres: run them with -m scale (.ci/run does)")
    for item in items:
        if item.get_closest_marker("scale") is not None:
            item.add_marker(skip)
