"""``POST /chat``: the original demo's endpoint, for curl users, on the same sessions as the ``chat`` tool.

``{"session_id": optional, "message": ...}`` in, ``{"session_id", "answer"}`` out; a second call
with the returned ``session_id`` continues the conversation. The turn runs as a job of the same
``Jobs``, with the same checks and history rules as the tool (``start_chat``). Unlike the tool it
waits for the whole answer (``--max-generation-seconds`` still caps it): curl has no
``chat_result``. A client that hangs up stops the model. Every failure is ``{"error": sentence}``
with a 4xx or 5xx status; a principal other than ``local`` gets it without the Ollama servers'
addresses (``redact.py``), which the server's log keeps.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from ..backend_errors import OllamaTimeout, OllamaUnreachable
from ..core.job import JobState
from ..errors import BackendError, InputError, McpOllamaError, SessionNotFound
from ..server.chat_tools import start_chat
from ..server.principal import LOCAL_PRINCIPAL, scope_principal
from ..server.redact import public_message
from ..server.state import AppState

__all__ = ["MAX_BODY_BYTES", "ChatEndpoint", "StateHolder", "error_status"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
FIELDS = frozenset({"session_id", "message"})


@dataclass
class StateHolder:
    """The server's ``AppState`` while its lifespan is open; ``None`` before and after."""

    state: AppState | None = None


def error_status(exc: McpOllamaError) -> int:
    """The HTTP status for a domain error: the caller's fault 4xx, Ollama's or ours 5xx."""
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, SessionNotFound):
        return 404
    if isinstance(exc, OllamaUnreachable):
        return 503
    if isinstance(exc, OllamaTimeout):
        return 504
    if isinstance(exc, BackendError):
        return 502
    return 500


def _error(status: int, sentence: str) -> JSONResponse:
    return JSONResponse({"error": sentence}, status_code=status)


class ChatEndpoint:
    """The ASGI app behind ``POST /chat`` (auth and ``guard.BodyGuard`` wrap it)."""

    def __init__(self, holder: StateHolder, security: TransportSecuritySettings) -> None:
        self._holder = holder
        self._security = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._respond(Request(scope, receive))
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> JSONResponse:
        refused = await self._security.validate_request(request, is_post=True)
        if refused is not None:  # the SDK's Host, Origin and Content-Type checks, as on /mcp
            return _error(refused.status_code, bytes(refused.body).decode("utf-8", "replace"))
        state = self._holder.state
        if state is None:
            return _error(503, "The server is starting or stopping; try again in a moment.")
        parsed = await _read_body(request)
        if isinstance(parsed, JSONResponse):
            return parsed
        message, session_id = parsed
        who = scope_principal(request.scope) or LOCAL_PRINCIPAL
        try:
            job = await start_chat(state, message, session_id=session_id, principal=who)
        except McpOllamaError as exc:
            return _failure(state, who, exc)
        hung_up = False
        async with anyio.create_task_group() as tg:

            async def watch_for_hangup() -> None:
                nonlocal hung_up
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                hung_up = True
                job.cancel("the HTTP client hung up")

            tg.start_soon(watch_for_hangup)
            await job.wait(None)
            tg.cancel_scope.cancel()
        if job.state is JobState.COMPLETE and job.outcome is not None:
            return JSONResponse({"session_id": job.session_id, "answer": job.outcome.answer})
        if job.error is not None:
            return _failure(state, who, job.error)
        if hung_up:
            logger.info("POST /chat in session %s: the client hung up; nothing stored", job.session_id)
        return _error(
            503,
            f"The answer in session {job.session_id} was {job.state.value} ({job.stop_reason}); "
            "nothing of it was stored. Send the message again.",
        )


def _failure(state: AppState, who: str, exc: McpOllamaError) -> JSONResponse:
    """The error response for ``exc``: in full for the operator, without addresses for anyone else."""
    if who == LOCAL_PRINCIPAL:
        return _error(error_status(exc), str(exc))
    urls = [state.settings.ollama_url, *(host.url for host in state.settings.other_ollama_hosts)]
    told = public_message(exc, urls)
    if told != str(exc):
        logger.warning("POST /chat for %s failed (told without addresses): %s", who, exc)
    return _error(error_status(exc), told)


async def _read_body(request: Request) -> tuple[str, str | None] | JSONResponse:
    """``(message, session_id)`` from the request body, or the 4xx response saying what is wrong."""
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, f"The request body is larger than {MAX_BODY_BYTES:,} bytes.")
    except ClientDisconnect:  # gone, or cut off for sending too slowly: the answer reaches nobody
        return _error(400, "The request body was cut off before its end.")
    try:
        data: Any = json.loads(body)
    except RecursionError:  # json's C decoder recurses once per level; 100,000 levels would be a 500
        return _error(400, "The body nests arrays or objects too deeply.")
    except (ValueError, UnicodeDecodeError):
        return _error(400, 'The body is not JSON; send {"message": "...", "session_id": optional}.')
    if not isinstance(data, dict):
        return _error(400, 'The body must be a JSON object: {"message": "...", "session_id": optional}.')
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        return _error(400, f"Unknown field(s): {', '.join(unknown)}; only message and session_id are read.")
    message, session_id = data.get("message"), data.get("session_id")
    if not isinstance(message, str):
        return _error(400, "message is required and must be a string.")
    if session_id is not None and not isinstance(session_id, str):
        return _error(400, "session_id must be a string (the one a previous call returned) or omitted.")
    return message, session_id
