"""ASGI checks in front of ``/mcp`` and ``POST /chat``: Host and Origin, body size, and JSON shape.

Every refusal is one sentence in the endpoint's own error shape: a JSON-RPC error object on
``/mcp``, ``{"error": sentence}`` on ``/chat``. The SDK's own checks stay behind these (they are
looser: prefix-matched origins, multi-line pydantic messages); what passes here passes there.

- ``HostOriginGuard`` parses Host and Origin (``exposure.Allowlist``) before anything else, auth
  included: a browser page on another site gets 403 whether or not it has a token.
- ``BodyGuard`` sits behind auth (so only token holders can make the server buffer a body): it
  reads the whole body, refuses one over the cap (413) or that is not JSON (400: malformed,
  invalid UTF-8, or nested deeper than the parser's 200-odd levels; a 100,000-deep array made
  ``POST /chat`` raise ``RecursionError``, a 500 with a traceback), and on ``/mcp`` one that is not
  a JSON-RPC message (the SDK's answer was a multi-line pydantic report); then it replays the body
  to the endpoint.
"""

from __future__ import annotations

import codecs
import json
from typing import Any, Literal

import anyio.to_thread
import pydantic_core
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exposure import Allowlist

__all__ = ["BodyGuard", "HostOriginGuard", "Style", "json_problem", "jsonrpc_problem"]

Style = Literal["jsonrpc", "chat"]
"""How an endpoint words its errors."""

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
OFF_LOOP_BYTES = 256 * 1024
"""Bodies at least this large are parsed in a worker thread: a few MiB of small JSON values take
most of a second to parse, and the event loop serves every other connection meanwhile."""


async def refuse(
    send: Send, style: Style, status: int, sentence: str, *, code: int = INVALID_REQUEST, close: bool = False
) -> None:
    """Answer ``status`` with ``sentence`` in ``style`` (``code`` is the JSON-RPC error code);
    ``close`` when unread body may follow, so that the client cannot keep sending it."""
    if style == "jsonrpc":
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": sentence}}
    else:
        payload = {"error": sentence}
    body = json.dumps(payload).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class HostOriginGuard:
    """Refuses a Host or Origin header that ``allowlist`` does not allow, on ``paths`` (by style)."""

    def __init__(self, app: ASGIApp, allowlist: Allowlist, paths: dict[str, Style]) -> None:
        self.app = app
        self.allowlist = allowlist
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        style = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if style is not None:
            headers = Headers(scope=scope)
            hosts, origins = headers.getlist("host"), headers.getlist("origin")
            if len(hosts) != 1 or not self.allowlist.host_ok(hosts[0]):
                await refuse(send, style, 421, "The Host header does not name this server.", close=True)
                return
            # Two Origin headers are refused too: which one a check reads is a detail to exploit.
            if len(origins) > 1 or not self.allowlist.origin_ok(origins[0] if origins else None):
                await refuse(
                    send, style, 403, "Requests from web pages at this Origin are refused.", close=True
                )
                return
        await self.app(scope, receive, send)


def json_problem(body: bytes, *, allow_bom: bool = False) -> tuple[str, Any]:
    """``("", value)`` for a JSON body, else ``(sentence, None)`` saying what is wrong with it.

    pydantic-core's parser (the one the SDK uses) stops at about 200 levels of nesting with an
    error instead of recursing, and refuses invalid UTF-8 and lone surrogates.
    """
    if allow_bom:  # json.loads (behind /chat) has always accepted a UTF-8 byte order mark
        body = body.removeprefix(codecs.BOM_UTF8)
    try:
        return "", pydantic_core.from_json(body)
    except ValueError as exc:
        detail = str(exc)
    if "recursion limit" in detail:
        return "The request body nests arrays or objects too deeply; 200 levels are allowed.", None
    if not body.strip():
        return "The request body is empty; send a JSON object.", None
    return f"The request body is not valid JSON ({detail}).", None


def jsonrpc_problem(message: Any) -> str:
    """What keeps ``message`` from being one JSON-RPC 2.0 message as the SDK reads it; "" if nothing.

    The same rules as the SDK's models (mcp_types.jsonrpc), no stricter: a request or notification
    has a string ``method`` and an object (or null) ``params``; a response has a string or integer
    ``id`` and an object ``result`` or an ``error`` with an integer ``code`` and a string ``message``.
    """
    if isinstance(message, list):
        return "The message must be one JSON-RPC message, a JSON object; batches are not supported."
    if not isinstance(message, dict):
        return "The message must be a JSON-RPC message, a JSON object."
    if message.get("jsonrpc") != "2.0":
        return 'The message must say "jsonrpc": "2.0".'
    if "method" in message:
        if not isinstance(message["method"], str):
            return 'The message\'s "method" must be a string.'
        if message.get("params") is not None and not isinstance(message["params"], dict):
            return 'The message\'s "params" must be a JSON object.'
        return ""
    if "result" not in message and "error" not in message:
        return 'The message needs a "method" (a request or a notification), or a "result" or an "error".'
    ident = message.get("id")
    if "result" in message:
        if isinstance(ident, bool) or not isinstance(ident, int | str):
            return 'A response\'s "id" must be a string or an integer.'
        if not isinstance(message["result"], dict):
            return 'A response\'s "result" must be a JSON object.'
        return ""
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int | str)):
        return 'An error response\'s "id" must be a string, an integer or null.'
    error = message["error"]
    if (
        not isinstance(error, dict)
        or isinstance(error.get("code"), bool)
        or not isinstance(error.get("code"), int)
        or not isinstance(error.get("message"), str)
    ):
        return 'An error response\'s "error" must be an object with an integer "code" and a string "message".'
    return ""


class BodyGuard:
    """Reads a POST body whole, refuses it in ``style`` if it is too large or malformed, else replays it."""

    def __init__(self, app: ASGIApp, max_bytes: int, style: Style) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.style = style

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        too_large = f"The request body is larger than {self.max_bytes:,} bytes."
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await refuse(send, self.style, 413, too_large, close=True)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone (or was cut off for being too slow): nobody to answer
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await refuse(send, self.style, 413, too_large, close=True)
                return
            if not message.get("more_body", False):
                break
        data = bytes(body)
        if headers.get("content-type", "").lower().startswith("application/json"):
            # Other media types are the endpoint's to refuse, in its words.
            sentence, code = await self._problem(data)
            if sentence:
                await refuse(send, self.style, 400, sentence, code=code)
                return
        await self.app(scope, _replay(data, receive), send)

    async def _problem(self, data: bytes) -> tuple[str, int]:
        """What is wrong with the body, and the JSON-RPC code for it; ``""`` when nothing is."""

        def check() -> tuple[str, int]:
            sentence, value = json_problem(data, allow_bom=self.style == "chat")
            if sentence or self.style != "jsonrpc":
                return sentence, PARSE_ERROR
            return jsonrpc_problem(value), INVALID_REQUEST

        if len(data) >= OFF_LOOP_BYTES:
            return await anyio.to_thread.run_sync(check)
        return check()


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then whatever the connection says next (a disconnect, when the client goes)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
