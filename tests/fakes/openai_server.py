"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

The real `openai` client talks to it over HTTP, so retries, timeouts and
parsing are the real ones. A script is either a list of entries served in
order, or a function of the request (for a model whose next step follows from
the conversation, which survives a resume). Entries:

- `Say(...)`: a completion with text and/or tool calls, and usage;
- `Fail(status)`: an error status (429, 500, ...);
- `Raw(body)`: any JSON body (malformed completions);
- any of them with `delay` seconds before the answer (timeouts).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Say:
    content: str | None = None
    # (name, arguments): arguments as a dict (sent as JSON) or a raw string (sent as is: malformed on purpose)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    # None: estimated from the text (about 4 characters a token), for realistic totals
    prompt_tokens: int | None = 100
    completion_tokens: int | None = 20
    delay: float = 0.0


@dataclass
class Fail:
    status: int = 429
    delay: float = 0.0
    message: str = "scripted failure"


@dataclass
class Raw:
    body: Any
    status: int = 200
    delay: float = 0.0


def call(name: str, **arguments) -> tuple[str, Any]:
    return (name, arguments)


def estimate_tokens(data: Any) -> int:
    return max(1, len(json.dumps(data)) // 4)


def completion(entry: Say, n: int, body: dict) -> dict:
    calls = [{"id": f"call_{n}_{i}", "type": "function",
              "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
             for i, (name, args) in enumerate(entry.calls)]
    message: dict[str, Any] = {"role": "assistant", "content": entry.content}
    if calls:
        message["tool_calls"] = calls
    prompt = entry.prompt_tokens
    if prompt is None:
        prompt = estimate_tokens([body.get("messages"), body.get("tools")])
    done = entry.completion_tokens if entry.completion_tokens is not None else estimate_tokens(message)
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body.get("model", "x"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}}


class FakeOpenAI:
    """Start with `with FakeOpenAI(script) as server:`; `server.url` is the base URL."""

    def __init__(self, script: list | Callable[[dict, int], Any]):
        self.script = script
        self.requests: list[dict] = []  # every request body received, in order
        self.headers: list[dict] = []  # lower-cased names
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next(self, body: dict) -> tuple[Any, int]:
        with self._lock:
            n = len(self.requests)
            self.requests.append(body)
        if callable(self.script):
            return self.script(body, n), n
        if n >= len(self.script):
            return Fail(500, message=f"script exhausted after {len(self.script)} entries"), n
        return self.script[n], n

    def __enter__(self) -> "FakeOpenAI":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                entry, n = server._next(body)
                time.sleep(getattr(entry, "delay", 0.0))
                if isinstance(entry, Fail):
                    return self._send(entry.status, {"error": {"message": entry.message, "type": "scripted"}})
                if isinstance(entry, Raw):
                    return self._send(entry.status, entry.body)
                return self._send(200, completion(entry, n, body))

            def _send(self, status: int, payload: Any) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def by_history(steps: list) -> Callable[[dict, int], Any]:
    """A model whose step is the number of assistant turns so far: it picks up after a resume."""
    def respond(body: dict, n: int) -> Any:
        k = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return steps[k] if k < len(steps) else Fail(500, message=f"no scripted step {k}")
    return respond
