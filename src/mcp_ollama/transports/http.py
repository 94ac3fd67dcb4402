"""MCP over streamable HTTP: the same server and lifespan as stdio, behind bearer tokens.

``build_http_app`` puts ``build_server(settings)`` behind the SDK's streamable HTTP session manager
at ``/mcp``: a handshake-era client (``initialize``) gets a stateful session, a 2026-07-28 request
is served on its own, statelessly. The SDK's pieces do the rest: ``BearerAuthBackend`` with our
``TokenVerifier`` (a token's name becomes ``AccessToken.client_id``, the principal),
``RequireAuthMiddleware`` (401 with ``WWW-Authenticate: Bearer``), and ``TransportSecuritySettings``
(Host and Origin allowlists against DNS rebinding). The SDK also binds each stateful session to
the token that opened it. Beside ``/mcp``: ``/healthz`` (no auth) and ``POST /chat``, the original
demo's endpoint (``chat_endpoint.py``). TLS is a reverse proxy's job.

Without a tokens file nobody authenticates (every request is from ``local``), and the CLI allows
that on loopback only (``exposure.check_exposure``).
"""

from __future__ import annotations

import logging
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
from ..server.state import AppState
from .auth import TokenBook
from .chat_endpoint import ChatEndpoint, StateHolder
from .exposure import allowed_hosts, allowed_origins, check_exposure, is_loopback

__all__ = ["MCP_PATH", "BookVerifier", "build_http_app", "serve_http", "transport_security"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SHUTDOWN_GRACE_SECONDS = 3
"""How long a stopping server waits for open streams (a client's GET stream never ends by itself)."""


class BookVerifier:
    """The SDK's ``TokenVerifier`` over a tokens file: a known token's name is its ``client_id``."""

    def __init__(self, book: TokenBook) -> None:
        self.book = book

    async def verify_token(self, token: str) -> AccessToken | None:
        name = self.book.name_for(token)
        if name is None:
            return None
        # subject too: the SDK keys session ownership and request-state binding on both.
        return AccessToken(token=token, client_id=name, subject=name, scopes=[])


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


def build_http_app(settings: Settings, extra_hosts: Sequence[str] = ()) -> Starlette:
    """The ASGI app ``serve --http`` runs: ``/mcp``, ``/chat`` and ``/healthz``.

    Raises ``TokenFileError`` for an unreadable tokens file.
    """
    server = build_server(settings)
    lowlevel = server._lowlevel_server  # what the SDK's own streamable_http_app hands the manager
    holder = StateHolder()
    _capture_lifespan_state(lowlevel, holder)
    security = transport_security(settings.http_bind, extra_hosts)
    manager = StreamableHTTPSessionManager(app=lowlevel, security_settings=security)
    mcp_app: ASGIApp = StreamableHTTPASGIApp(manager)
    chat_app: ASGIApp = ChatEndpoint(holder, security)
    middleware: list[Middleware] = []
    if settings.tokens_file is not None:
        book = TokenBook(Path(settings.tokens_file))
        if not len(book):
            logger.warning("%s holds no token: every request will be refused", settings.tokens_file)
        middleware = [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(BookVerifier(book))),
            Middleware(AuthContextMiddleware),
        ]
        mcp_app = RequireAuthMiddleware(mcp_app, required_scopes=[])
        chat_app = RequireAuthMiddleware(chat_app, required_scopes=[])

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


async def serve_http(settings: Settings, extra_hosts: Sequence[str] = ()) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's handlers), then close the lifespan cleanly."""
    import uvicorn

    check_exposure(settings.http_bind, settings.tokens_file)
    app = build_http_app(settings, extra_hosts)
    if not is_loopback(settings.http_bind) and not extra_hosts:
        logger.warning(
            "listening on %s: clients must use a loopback name or this address in the URL; give the "
            "names they use (or your reverse proxy passes on) with --allowed-host",
            settings.http_bind,
        )
    config = uvicorn.Config(
        app,
        host=settings.http_bind,
        port=settings.http_port,
        log_config=None,  # our logging (stderr); uvicorn's own would send access lines to stdout
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        server_header=False,
    )
    await _uvicorn_server_class()(config).serve()
