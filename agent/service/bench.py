"""The webhook load check: the real service in its own process, signed deliveries, latencies.

The server runs as `onboard serve` in a child process (its own interpreter, as
in production), so the sender's threads do not share its GIL. Half the
deliveries repeat an earlier delivery id, as GitHub's redeliveries do; each
unique one labels a different issue asking for a different model, so every
unique delivery must make exactly one job.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.service.github_webhook import sign


@dataclass
class BenchResult:
    deliveries: int
    unique: int
    elapsed_s: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    created: int
    jobs: int
    startup_s: float
    errors: list[str] = field(default_factory=list)

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")

    def rows(self) -> list[tuple[str, str]]:
        return [("deliveries sent (unique + duplicates)", f"{self.deliveries} ({self.unique} + "
                                                         f"{self.deliveries - self.unique})"),
                ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))),
                ("jobs created (answers / queue)", f"{self.created} / {self.jobs}"),
                ("wall time of the load", f"{self.elapsed_s:.2f} s ({self.deliveries / self.elapsed_s:.0f} req/s)"),
                ("latency p50", f"{self.pct(0.50):.1f} ms"), ("latency p95", f"{self.pct(0.95):.1f} ms"),
                ("latency p99", f"{self.pct(0.99):.1f} ms"), ("latency max", f"{max(self.latencies_ms):.1f} ms"),
                ("service start (process to healthy)", f"{self.startup_s:.1f} s")]

    def problems(self, budget_s: float) -> list[str]:
        out = list(self.errors)
        if self.jobs != self.unique or self.created != self.unique:
            out.append(f"expected exactly {self.unique} jobs, got {self.jobs} in the queue, {self.created} answered")
        if self.elapsed_s > budget_s:
            out.append(f"load took {self.elapsed_s:.1f} s, over the {budget_s:.0f} s budget")
        if self.pct(0.99) >= 200:
            out.append(f"p99 {self.pct(0.99):.0f} ms is not under 200 ms")
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _payloads(n: int, secret: str) -> tuple[list[tuple[bytes, dict]], int]:
    unique = n - n // 2
    first = []
    for i in range(unique):
        body = json.dumps({"action": "labeled", "label": {"name": "onboard"},
                           "issue": {"number": i + 1, "title": f"/onboard bench_model_{i:03d}", "body": "",
                                     "labels": [{"name": "onboard"}]},
                           "repository": {"full_name": "bench/requests"},
                           "sender": {"login": "bench", "type": "User"}}).encode()
        first.append((body, {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                             "X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}))
    rng = random.Random(7)
    repeats = [rng.choice(first) for _ in range(n - unique)]
    order = first + repeats
    rng.shuffle(order)
    return order, unique


def run_bench(deliveries: int = 200, clients: int = 8, concurrency: int = 1) -> BenchResult:
    secret, token = secrets.token_hex(20), secrets.token_hex(20)
    data = Path(tempfile.mkdtemp(prefix="onboard-bench-service-"))
    port = _free_port()
    # No job gets past admission here (no GitHub credentials), so none needs a sandbox; docker keeps
    # `serve` from refusing the local backend without weakening anything.
    env = {**os.environ, "ONBOARD_DATA_DIR": str(data), "ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET": secret,
           "ONBOARD_SERVICE_API_TOKEN": token, "ONBOARD_SERVICE_CONCURRENCY": str(concurrency),
           "ONBOARD_SANDBOX": "docker"}
    for key in [k for k in env if k.startswith(("ONBOARD_GITHUB_", "ONBOARD_SERVICE_SLACK"))]:
        del env[key]  # no real GitHub or Slack during a load test
    log = open(data / "serve.log", "w")
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", "from agent.cli.main import main; main()", "serve", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False, timeout=5) as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"onboard serve exited; see {data / 'serve.log'}")
                try:
                    if c.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        startup = time.monotonic() - start
        order, unique = _payloads(deliveries, secret)
        latencies, statuses, created, errors = [], {}, [0], []
        lock, cursor = threading.Lock(), iter(order)

        def sender():
            with httpx.Client(trust_env=False, timeout=10) as c:
                while True:
                    with lock:
                        item = next(cursor, None)
                    if item is None:
                        return
                    t = time.perf_counter()
                    try:
                        r = c.post(f"{base}/webhooks/github", content=item[0], headers=item[1])
                    except httpx.HTTPError as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    ms = (time.perf_counter() - t) * 1000
                    with lock:
                        latencies.append(ms)
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        created[0] += bool(r.status_code == 202 and r.json().get("created"))

        t0 = time.monotonic()
        threads = [threading.Thread(target=sender) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        with httpx.Client(trust_env=False, timeout=10) as c:
            jobs = c.get(f"{base}/jobs", params={"limit": 1000}, headers={"Authorization": f"Bearer {token}"}).json()
        result = BenchResult(deliveries, unique, elapsed, latencies, statuses, created[0], len(jobs), startup,
                             errors[:5])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    shutil.rmtree(data, ignore_errors=True)  # kept (with serve.log) only when the run raised
    return result
