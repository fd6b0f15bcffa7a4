"""`onboard bench scale`: the same nightly subset with 1 and with 2 workers on this machine.

Real servers (started here unless URLs are given), real `onboard worker`
processes, real onboardings. Numbers: jobs/hour from the first enqueue to
the last final row, and enqueue→start latency (the worker's log line when a
job process takes the job), for the first job of each worker (engine
latency on an idle worker) and over all jobs (includes the wait in queue).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from agent.scale.servers import Postgres, RabbitMQ, wait_for

_RUN = re.compile(r"^(\S+ \S+) INFO agent\.scale\.task \[\d+\] job (\w+): run (\d+) on", re.M)
FINAL = ("done", "failed", "cancelled", "unauthorized", "joined")


def _starts(logs: list[Path]) -> dict[str, float]:
    starts: dict[str, float] = {}
    for log in logs:
        for stamp, job, run in _RUN.findall(log.read_text()):
            if run == "1":
                starts[job] = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return starts


def _workers(n: int, env: dict, root: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log = open(root / f"w{i}.log", "w")
        p = subprocess.Popen([sys.executable, "-c", "from agent.cli.main import main; main()", "worker", "-c", "1",
                              "-n", f"bench{i}@{os.uname().nodename}"], env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        p.log = root / f"w{i}.log"
        procs.append(p)
    for p in procs:
        wait_for(lambda: "ready." in p.log.read_text() or p.poll() is not None, 180, what="a worker")
        if p.poll() is not None:
            raise RuntimeError(f"worker exited: {p.log.read_text()[-500:]}")
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def run_one(n: int, types: list[str], target: str, broker: str, db: str, data: Path, cache: Path,
            timeout_s: float, progress) -> dict:
    from agent.nightly.settings import NightlySettings
    from agent.scale.ledger import PgJobQueue
    from agent.scale.publish import Publisher

    nightly = NightlySettings()
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("ONBOARD_DATA_DIR",)}
    env.update(ONBOARD_BROKER_URL=broker, ONBOARD_CHECKPOINT_URL=db, ONBOARD_DATA_DIR=str(data),
               ONBOARD_CACHE_DIR=str(cache), ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX="1")
    env.setdefault("ONBOARD_SANDBOX", "local")
    env["ONBOARD_MAX_CANDIDATES"] = str(nightly.max_candidates)  # as the sweep runs a type
    procs = _workers(n, env, data)
    try:
        queue = PgJobQueue(db)
        pub = Publisher(queue, broker)
        enqueued: dict[str, float] = {}
        for t in types:
            job, _ = queue.enqueue(trigger_key=f"bench:{n}:{t}", subject=f"{target}|{t}", source="nightly",
                                   reply={}, request={"model": t, "target": target, "publish": "auto",
                                                      "by": "bench", "authorize": None,
                                                      "budget_s": nightly.per_type_timeout_s})
            enqueued[job.id] = time.time()
            pub.publish_queued()
        progress(f"{n} worker(s): {len(types)} jobs enqueued")
        wait_for(lambda: all(queue.get(j).status in FINAL for j in enqueued), timeout_s, 1.0, "the jobs")
        jobs = [queue.get(j) for j in enqueued]
        starts = _starts([p.log for p in procs])
        wall = max(j.updated_at for j in jobs) - min(enqueued.values())
        latencies = sorted(starts[j] - enqueued[j] for j in enqueued if j in starts)
        first = sorted(starts[j] - enqueued[j] for j in sorted(enqueued, key=lambda j: starts.get(j, 1e18))[:n]
                       if j in starts)
        queue.close()
        return {"workers": n, "jobs": len(jobs), "wall_s": round(wall, 1),
                "jobs_per_hour": round(len(jobs) / wall * 3600, 1),
                "outcomes": {o: sum((j.outcome or j.status) == o for j in jobs)
                             for o in sorted({j.outcome or j.status for j in jobs})},
                # what each job ended as, so a failure in one worker count is read, not guessed
                "per_job": {j.request.get("model", j.id): {"status": j.status, "outcome": j.outcome,
                                                           "worker": j.worker, "message": j.message[:300]}
                            for j in jobs},
                "latency_idle_s": [round(x, 3) for x in first],
                "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
                "latency_max_s": round(max(latencies), 3) if latencies else None}
    finally:
        _stop(procs)


def bench_scale(types: list[str], target: str, counts: list[int], cache: Path, timeout_s: float,
                progress=lambda m: None) -> dict:
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="onboard-bench-scale-"))
    os.chmod(root, 0o755)  # the servers run as their own users
    pg, mq = Postgres(root / "pg"), RabbitMQ(root / "mq")
    try:
        t0 = time.monotonic()
        pg.start()
        mq.start()
        progress(f"Postgres + RabbitMQ up in {time.monotonic() - t0:.1f} s")
        rows = []
        for n in counts:
            with psycopg.connect(pg.url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE bench_{n}")
            rows.append(run_one(n, types, target, mq.url, pg.url.rsplit("/", 1)[0] + f"/bench_{n}",
                                root / f"data{n}", cache, timeout_s, progress))
            progress(f"{n} worker(s): {rows[-1]['jobs_per_hour']} jobs/h")
        return {"types": types, "target": target, "cpus": os.cpu_count(), "runs": rows}
    finally:
        mq.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
