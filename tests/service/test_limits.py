"""Unauthenticated traffic is bounded: body size, body and header time, connections; 401 before 422.

The server is the one `onboard serve` configures (its uvicorn options captured from the CLI), run
for real on 127.0.0.1 on an ephemeral port; the clients are raw sockets, so nothing is buffered on
our side and slow senders are really slow. Every client loop is bounded in count and time.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.service.app import create_app
from tests.fakes.service_env import API_TOKEN, WEBHOOK_SECRET, make_service

MiB = 1024 * 1024
BIG = 100 * MiB
LIMITS = {"ONBOARD_SERVICE_BODY_TIMEOUT_S": "1", "ONBOARD_SERVICE_HEADER_TIMEOUT_S": "1",
          "ONBOARD_SERVICE_MAX_CONNECTIONS": "4"}


class NeverRuns:
    def run(self, *a):
        raise AssertionError("no job runs here")


@contextmanager
def served(tmp_path, monkeypatch, env: dict[str, str]):
    """`onboard serve` with `env`, its uvicorn options taken as-is, serving on a loopback socket of our own."""
    from agent.cli.main import app

    for key, value in {"ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET, "ONBOARD_SERVICE_API_TOKEN": API_TOKEN,
                       "ONBOARD_SERVICE_CONCURRENCY": "0", "ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX": "1",
                       "ONBOARD_SANDBOX": "local", **env}.items():
        monkeypatch.setenv(key, value)
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **kw: captured.update(kw, app=asgi))
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and "app" in captured, result.output
    options = {k: v for k, v in captured.items() if k not in ("app", "host", "port")}
    server = uvicorn.Server(uvicorn.Config(captured["app"], **{**options, "log_level": "warning"}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


class PeakRSS:
    """The process's resident-set peak above its level at entry (the server runs in this process)."""

    def __enter__(self):
        self.base, self.peak, self._stop = rss(), 0, threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss() - self.base)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def stream(port: int, head: bytes, total: int, chunked: bool = False, budget_s: float = 60.0):
    """Send `head` then up to `total` body bytes, stopping as soon as the server answers or hangs up.

    Returns (body bytes sent, the server's first bytes or b"" when it only closed).
    """
    block = b"x" * (64 * 1024)
    frame = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    sent, answer, deadline = 0, b"", time.monotonic() + budget_s
    try:
        s.sendall(head)
        for _ in range(total // len(block)):
            if time.monotonic() > deadline or select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(frame)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
            sent += len(block)
        s.settimeout(10)
        try:
            answer = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    return sent, answer


def post_head(path: str, length: int | None, extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: issues\r\nX-GitHub-Delivery: d1\r\nX-Hub-Signature-256: sha256=00\r\n{extra}"
            f"{size}\r\n").encode()


@pytest.mark.parametrize("path", ["/webhooks/github", "/chatops", "/jobs/j1/approve"])
def test_a_declared_100mb_body_is_refused_before_it_is_read(tmp_path, monkeypatch, path):
    with served(tmp_path, monkeypatch, LIMITS) as port, PeakRSS() as mem:
        sent, answer = stream(port, post_head(path, BIG), BIG)
    assert answer.startswith((b"HTTP/1.1 413", b"HTTP/1.1 401")), answer[:100]
    assert sent <= 16 * MiB, f"server took {sent / MiB:.0f} MiB before answering"
    assert mem.peak < 40 * MiB, f"RSS grew by {mem.peak / MiB:.0f} MiB"


def test_a_chunked_100mb_body_is_cut_at_the_cap(tmp_path, monkeypatch):
    with served(tmp_path, monkeypatch, LIMITS) as port, PeakRSS() as mem:
        sent, answer = stream(port, post_head("/webhooks/github", None), BIG, chunked=True)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent <= 16 * MiB, f"server took {sent / MiB:.0f} MiB before answering"
    assert mem.peak < 40 * MiB, f"RSS grew by {mem.peak / MiB:.0f} MiB"


def closed_within(s: socket.socket, trickle: bytes, budget_s: float) -> float | None:
    """Trickle one byte every 0.1 s; seconds until the server hung up (None: still open at the budget)."""
    start = time.monotonic()
    for i in range(int(budget_s / 0.1)):
        if select.select([s], [], [], 0.1)[0]:
            try:
                while s.recv(4096):  # an answer (408) may come first; then the close
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
            return time.monotonic() - start
        try:
            s.sendall(trickle[i % len(trickle):][:1])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
    return None


def test_a_slow_body_is_dropped_within_the_body_timeout(tmp_path, monkeypatch):
    with served(tmp_path, monkeypatch, LIMITS) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(post_head("/webhooks/github", 1000))
        took = closed_within(s, b"{", budget_s=6)
        s.close()
    assert took is not None and took < 2.5, f"slow body held for {took} s"


def test_slow_headers_are_dropped_within_the_header_timeout(tmp_path, monkeypatch):
    with served(tmp_path, monkeypatch, LIMITS) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        took = closed_within(s, b"X-Slow: 1\r\n", budget_s=6)
        s.close()
    assert took is not None and took < 2.5, f"slow headers held for {took} s"


def test_connections_beyond_the_limit_are_turned_away(tmp_path, monkeypatch):
    with served(tmp_path, monkeypatch, {**LIMITS, "ONBOARD_SERVICE_BODY_TIMEOUT_S": "30"}) as port:
        held = []
        for _ in range(3):  # with the next one, 4 connections: the limit
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(post_head("/webhooks/github", 1000))
            held.append(s)
        time.sleep(0.3)  # let the server see them
        _, answer = stream(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0)
        for s in held:
            s.close()
        _, later = stream(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 0)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
    assert later.startswith(b"HTTP/1.1 200"), later[:100]


@pytest.fixture
def client(tmp_path):
    service, _ = make_service(tmp_path, None, lambda s, f: NeverRuns())
    service.start_workers = False
    with TestClient(create_app(service)) as c:
        yield c


def test_unauthenticated_requests_get_401_before_any_parsing(client):
    for body in (b"{not json", b'{"approved": "maybe"}', b"[]"):
        r = client.post("/jobs/j1/approve", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401, (body, r.status_code, r.text)
        r = client.post("/chatops", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401, (body, r.status_code, r.text)
    assert client.get("/jobs", params={"limit": "many"}).status_code == 401
    assert client.post("/chatops", content=b"x" * 10, headers={"Content-Type": "application/json",
                                                               "Content-Length": "5000000"}).status_code == 413
    bad = client.post("/jobs/j1/approve", content=b"{not json",
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"})
    assert bad.status_code == 422 and "pydantic" not in bad.text


def test_the_body_cap_is_a_setting(tmp_path):
    service, _ = make_service(tmp_path, None, lambda s, f: NeverRuns(), max_body_bytes=2048)
    service.start_workers = False
    with TestClient(create_app(service)) as c:
        r = c.post("/chatops", content=b"x" * 4096,
                   headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"})
        assert r.status_code == 413 and "2048" in r.json()["detail"]
        ok = c.post("/chatops", json={"text": "help"}, headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert ok.status_code == 200
