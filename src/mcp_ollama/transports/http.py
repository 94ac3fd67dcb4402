"""MCP over streamable HTTP: the same server and lifespan as stdio, behind bearer tokens.

``build_http_app`` puts ``build_server(settings)`` behind the SDK's streamable HTTP session manager
at ``/mcp``: a handshake-era client (``initialize``) gets a stateful session, a 2026-07-28 request
is served on its own, statelessly. The SDK's pieces do the rest: ``BearerAuthBackend`` with our
``TokenVerifier`` (a token's name becomes ``AccessToken.client_id``, the principal),
``RequireAuthMiddleware`` (401 with ``WWW-Authenticate: Bearer``), and ``TransportSecuritySettings``
(Host and Origin allowlists against DNS rebinding). The SDK also binds each stateful session to
the token that opened it. Beside ``/mcp``: ``/healthz`` (no auth) and ``POST /chat``, the original
demo's endpoint (``chat_endpoint.py``). TLS is a reverse proxy's job.

No request to ``/mcp`` or ``/chat`` goes without a token. Besides the tokens file's, the operator's
own token is accepted as ``local`` (stdio's principal): ``MCP_OLLAMA_HTTP_TOKEN``, or, without it
and without a tokens file, a random one made at start and printed once on stderr, as Jupyter does.
Without a tokens file the CLI still listens on loopback only (``exposure.check_exposure``).

Hostile clients (``connections.py``, ``guard.py``, ``logflood.py``): header and body deadlines, caps
on open connections (overall, fitted to the open-file limit, and per address) answered 503 at
once, Host and Origin parsed rather than prefix-matched, bodies capped and checked as JSON before
the endpoints see them, and a log that repeats an error once a minute with a count.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from .. import __version__
from ..config import Settings
from ..server import build_server
from ..server.app import settle_heap
from ..server.sdk import lowlevel_server
from ..server.state import AppState
from .auth import TokenBook, TokenChecker, hash_token
from .chat_endpoint import ChatEndpoint, StateHolder
from .connections import ConnectionLimits, guarded_h11_protocol
from .exposure import Allowlist, allowed_hosts, allowed_origins, check_exposure, is_loopback
from .guard import BodyGuard, HostOriginGuard, Style
from .limits import connection_budget
from .logflood import filtering_repeats

__all__ = ["MCP_PATH", "BookVerifier", "build_http_app", "serve_http", "transport_security"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SHUTDOWN_GRACE_SECONDS = 3
"""How long a stopping server waits for open streams (a client's GET stream never ends by itself)."""
LISTEN_BACKLOG = 64
"""Connections waiting in the kernel to be accepted (uvicorn's default is 2048). asyncio accepts a
whole backlog in one go, a descriptor each, before any of them can be counted or refused: with 2048,
a flood of 1,100 half-open connections took a process limited to 1,024 open files to ``EMFILE``
despite the connection cap; with 64 the peak stayed 218 above the cap (3,000 connections). A client
beyond the queue is not refused: its SYN is retried, as under any SYN flood."""


class BookVerifier:
    """The SDK's ``TokenVerifier`` over the tokens file and the operator's token: a known token's
    name (``local`` for the operator's) is its ``client_id``."""

    def __init__(self, book: TokenChecker) -> None:
        self.book = book

    async def verify_token(self, token: str) -> AccessToken | None:
        name = self.book.name_for(token)
        if name is None:
            return None
        # subject too: the SDK keys session ownership and request-state binding on both (never on
        # the token itself), so the AccessToken, which lives on in the request's scope and a
        # context variable, carries the token's hash and not the credential.
        digest = "sha256:" + hash_token(token).hex()
        return AccessToken(token=digest, client_id=name, subject=name, scopes=[])


def transport_security(bind: str, extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names, the bind address and ``extra_hosts`` only."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts(bind, extra_hosts),
        allowed_origins=allowed_origins(bind, extra_hosts),
    )


async def healthz(request: Request) -> JSONResponse:
    """Liveness for load balancers and scripts: no auth, and nothing about anyone."""
    return JSONResponse({"status": "ok", "version": __version__})


def _capture_lifespan_state(lowlevel: Server[Any], holder: StateHolder) -> None:
    """Let ``/chat`` see the ``AppState`` the session manager's lifespan opens.

    The manager enters ``lowlevel.lifespan`` once for the app's life; wrapping that public
    attribute hands the state over without opening a second store or HTTP client.
    """
    inner = lowlevel.lifespan

    @asynccontextmanager
    async def lifespan(server: Server[Any]) -> AsyncIterator[Any]:
        async with inner(server) as state:
            holder.state = state if isinstance(state, AppState) else None
            try:
                yield state
            finally:
                holder.state = None

    lowlevel.lifespan = lifespan


def build_http_app(
    settings: Settings, extra_hosts: Sequence[str] = (), operator_token: str | None = None
) -> Starlette:
    """The ASGI app ``serve --http`` runs: ``/mcp``, ``/chat`` and ``/healthz``.

    ``/mcp`` and ``/chat`` accept the tokens file's tokens and ``operator_token`` (as ``local``);
    with neither, every request to them is refused. Raises ``TokenFileError`` for an unreadable
    tokens file.
    """
    server = build_server(dataclasses.replace(settings, remote=True))  # no request names a file to read
    lowlevel = lowlevel_server(server)  # what the SDK's own streamable_http_app hands the manager
    holder = StateHolder()
    _capture_lifespan_state(lowlevel, holder)
    security = transport_security(settings.http_bind, extra_hosts)
    limit = settings.http_max_body_bytes
    manager = StreamableHTTPSessionManager(
        app=lowlevel, security_settings=security, max_request_body_size=limit
    )
    book = TokenBook(Path(settings.tokens_file)) if settings.tokens_file is not None else None
    if book is not None and not len(book) and operator_token is None:
        logger.warning("%s holds no token: every request will be refused", settings.tokens_file)
    if book is None and operator_token is None:
        logger.warning("no tokens file and no operator token: every request will be refused")
    verifier = BookVerifier(TokenChecker(book, operator_token))
    # Auth first, then the body check: only a token holder can make the server read a body.
    mcp_app: ASGIApp = RequireAuthMiddleware(
        BodyGuard(StreamableHTTPASGIApp(manager), limit, "jsonrpc"), required_scopes=[]
    )
    chat_app: ASGIApp = RequireAuthMiddleware(
        BodyGuard(ChatEndpoint(holder, security), limit, "chat"), required_scopes=[]
    )
    guarded: dict[str, Style] = {MCP_PATH: "jsonrpc", "/chat": "chat"}
    middleware = [
        # Outermost: a browser page on another site is refused before it learns anything else.
        Middleware(
            HostOriginGuard, allowlist=Allowlist.for_bind(settings.http_bind, extra_hosts), paths=guarded
        ),
        Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier)),
        Middleware(AuthContextMiddleware),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(MCP_PATH, mcp_app),
        Route("/chat", chat_app, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _uvicorn_server_class() -> type[Any]:
    import uvicorn

    class CleanExitServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done, so the process dies by
        the signal; as on stdio, a stop asked for by a signal ends cleanly, with exit status 0."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return CleanExitServer


def _operator_token(settings: Settings) -> tuple[str | None, bool]:
    """The operator's token, and whether it was made here: ``MCP_OLLAMA_HTTP_TOKEN``; else, without
    a tokens file, a new random one (as long as ``tokens add`` makes); else none."""
    if settings.http_token is not None:
        return settings.http_token.reveal(), False
    if settings.tokens_file is None:
        return secrets.token_urlsafe(32), True
    return None, False


def _announce(settings: Settings, token: str | None, generated: bool) -> None:
    """The one place the generated token is ever written: stderr, once, before serving."""
    if settings.tokens_file is not None and not generated:
        return
    host = f"[{settings.http_bind}]" if ":" in settings.http_bind else settings.http_bind
    url = f"http://{host}:{settings.http_port}{MCP_PATH}"
    if generated:
        how = (
            f"send this run's token with every request: Authorization: Bearer {token} "
            "(set MCP_OLLAMA_HTTP_TOKEN to choose it yourself, or use --tokens-file)"
        )
    else:
        how = "send the token in MCP_OLLAMA_HTTP_TOKEN with every request (Authorization: Bearer ...)"
    print(f"mcp-ollama: serving MCP at {url}; {how}", file=sys.stderr, flush=True)


async def serve_http(settings: Settings, extra_hosts: Sequence[str] = ()) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's handlers), then close the lifespan cleanly."""
    import uvicorn

    check_exposure(settings.http_bind, settings.tokens_file)
    token, generated = _operator_token(settings)
    app = build_http_app(settings, extra_hosts, token)
    settle_heap()
    if not is_loopback(settings.http_bind) and not extra_hosts:
        logger.warning(
            "listening on %s: clients must use a loopback name or this address in the URL; give the "
            "names they use (or your reverse proxy passes on) with --allowed-host",
            settings.http_bind,
        )
    limits = ConnectionLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        max_connections=connection_budget(settings.http_max_connections),
        max_per_address=settings.http_max_connections_per_address,
    )
    config = uvicorn.Config(
        app,
        host=settings.http_bind,
        port=settings.http_port,
        http=guarded_h11_protocol(limits),
        backlog=LISTEN_BACKLOG,
        ws="none",  # nothing here speaks WebSocket; an upgrade request is served as plain HTTP
        timeout_keep_alive=math.ceil(settings.http_keep_alive),  # uvicorn takes whole seconds
        log_config=None,  # our logging (stderr); uvicorn's own would send access lines to stdout
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        server_header=False,
    )
    _announce(settings, token, generated)
    with filtering_repeats():
        await _uvicorn_server_class()(config).serve()
