"""A round-robin reverse proxy for row 12 (``bench/replica_scenarios.py``): one address, N replicas.

    python bench/rr_proxy.py --port P --upstream URL [--upstream URL ...]

Each HTTP request goes to the next upstream in turn (per request, not per connection: a client's
keep-alive connection to the proxy reaches both replicas), as a load balancer with no stickiness
would. That is sound for 2026-07-28 clients, whose requests are stateless; a handshake-era session
would need to stay on one replica, which this proxy does not do. The request is read whole and
sent on over a pooled keep-alive connection (``Host`` is the upstream's, hop-by-hop headers
dropped); the answer is passed back as it arrives, chunk by chunk, so an event stream stays a
stream. An upstream that cannot be reached is answered 502.

``GET /proxy/stats`` (answered here, not forwarded): ``{"upstreams": [{"url", "requests",
"chats", "failed"}]}``, where ``chats`` counts ``tools/call`` requests for ``chat`` (the 2026-07-28
``Mcp-Method`` / ``Mcp-Name`` headers) and ``failed`` the requests answered 5xx or not reached.
A process of its own, like the fakes, so it does not share the bench's GIL with the clients; it
needs only uvicorn and httpx (the server's own dependencies) and imports nothing of the project.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
HOP_BY_HOP = {
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
}


class RoundRobinProxy:
    """The ASGI app: forwards every request but ``/proxy/stats`` to the next upstream."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.turn = 0
        self.stats: list[dict[str, Any]] = [
            {"url": u, "requests": 0, "chats": 0, "failed": 0} for u in self.upstreams
        ]
        self.http: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/proxy/stats":
                await _answer(send, 200, json.dumps({"upstreams": self.stats}).encode(), b"application/json")
            else:
                await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Idle upstream connections are dropped before the server's own keep-alive (5 s)
                # would close them under a request.
                limits = httpx.Limits(
                    max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0
                )
                self.http = httpx.AsyncClient(limits=limits, timeout=120.0, trust_env=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.http is not None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        k = self.turn
        self.turn = (k + 1) % len(self.upstreams)
        stat = self.stats[k]
        stat["requests"] += 1
        headers = [(n, v) for n, v in scope["headers"] if n.lower() not in HOP_BY_HOP]
        named = dict(headers)
        if named.get(b"mcp-method") == b"tools/call" and named.get(b"mcp-name") == b"chat":
            stat["chats"] += 1
        url = self.upstreams[k] + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = self.http.build_request(scope["method"], url, headers=headers, content=bytes(body))
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            stat["failed"] += 1
            await _answer(send, 502, f"upstream {self.upstreams[k]}: {exc!r}".encode(), b"text/plain")
            return
        try:
            if response.status_code >= 500:
                stat["failed"] += 1
            out = [(n.lower(), v) for n, v in response.headers.raw if n.lower() not in HOP_BY_HOP]
            if "content-length" in response.headers:  # the raw body is passed on, so it still holds
                out.append((b"content-length", response.headers["content-length"].encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True)
    args = parser.parse_args()
    app = RoundRobinProxy(args.upstream)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
