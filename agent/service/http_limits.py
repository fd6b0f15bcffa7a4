"""Bounds on what an unauthenticated client can hold: body size and time, header time, connections.

Signatures and tokens are checked in the handlers, after headers arrive, so
everything before that check must be cheap: a declared body over the cap is
refused before a byte of it is read, a streamed one is cut at the cap, a body
that arrives too slowly is answered 408, and a connection whose headers do not
arrive in time is closed. Any response sent before the body was read closes
the connection, so nobody can keep trickling into it afterwards.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.service.settings import ServiceSettings


class BodyLimits:
    """ASGI middleware: cap and deadline for request bodies, enforced as the handler reads."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is not None:
            if not declared.isdigit():
                return await _answer(send, 400, "bad Content-Length")
            if int(declared) > self.max_bytes:
                return await _answer(send, 413, self._too_large())
        state = {"read": 0, "done": not chunked and int(declared or 0) == 0}
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive():
            if state["done"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                raise HTTPException(408, f"request body not received within {self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.max_bytes:
                    raise HTTPException(413, self._too_large())
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        async def closing_send(message):
            if message["type"] == "http.response.start" and not state["done"]:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, closing_send)
        except ClientDisconnect:  # the client left mid-body: nobody to answer, nothing to log
            pass

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes (ONBOARD_SERVICE_MAX_BODY_BYTES)"


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class HeaderDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are late.

    uvicorn times out idle keep-alive connections but not a client that keeps
    sending a few header bytes; this arms a deadline when the connection opens
    and after each response, and closes the connection if no new request has
    started by then.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(None)

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        self._arm(finished)

    def _arm(self, cycle) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._late, cycle)

    def _late(self, cycle) -> None:
        idle = self.cycle is cycle and (cycle is None or cycle.response_complete)
        if idle and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


def server_options(svc: ServiceSettings) -> dict:
    """uvicorn.run keyword arguments carrying the service's connection limits."""
    protocol = type("HeaderDeadlineH11", (HeaderDeadlineH11,), {"header_timeout_s": svc.header_timeout_s})
    return {"http": protocol, "timeout_keep_alive": svc.keep_alive_s, "limit_concurrency": svc.max_connections,
            "h11_max_incomplete_event_size": svc.max_header_bytes}
