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
