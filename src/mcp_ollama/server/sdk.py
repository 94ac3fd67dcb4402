"""Every SDK internal this package touches, named once, each checked against ``mcp`` 2.3.0.

The SDK offers no public way to these; ``tests/test_sdk_internals.py`` exercises each one on a
real server and fails by name when an SDK upgrade moves it. Nothing else in the package reaches
behind the SDK's public API: it calls these.

| accessor            | internal                                   | what for                               |
|---------------------|--------------------------------------------|----------------------------------------|
| ``lowlevel_server`` | ``MCPServer._lowlevel_server``             | middleware, run(), the HTTP manager     |
| ``tool_manager``    | ``MCPServer._tool_manager``                | is a tool known, its argument model     |
| ``connection``      | ``ServerSession._connection``              | a handshake-era client's identity       |
| ``request_outbound``| ``ServerSession._request_outbound``        | the cancel flag, whether progress goes  |
| ``dispatch_channel``| ``_JSONRPCDispatchContext._dispatcher``    | which cancel notification is whose      |
"""

from __future__ import annotations

from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import ToolManager

CHECKED_WITH = "2.3.0"
"""The ``mcp`` version every accessor here was checked against (``pyproject.toml`` pins it)."""


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level server behind ``server`` (what the SDK's own ``streamable_http_app`` uses)."""
    lowlevel: Server[Any] = server._lowlevel_server
    return lowlevel


def tool_manager(server: MCPServer[Any]) -> ToolManager:
    """``server``'s registered tools, with their argument models."""
    manager: ToolManager = server._tool_manager
    return manager


def connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection behind a request's per-request session: a handshake-era client's only
    stable identity across its requests."""
    found: Connection = ctx.session._connection
    return found


def request_outbound(ctx: ServerRequestContext[Any, Any]) -> object | None:
    """The request's dispatch context (``cancel_requested``; 2026-07-28 wraps it in ``_inner``,
    which holds ``_on_progress`` / ``_progress_token``); ``None`` where the session has none."""
    return getattr(ctx.session, "_request_outbound", None)


def dispatch_channel(ctx: ServerRequestContext[Any, Any]) -> object | None:
    """The JSON-RPC dispatcher that carried this request or notification: one per stdio pipe or
    handshake-era HTTP session, so with a request id it names one request. ``None`` where there is
    none (in-process dispatch, the 2026-07-28 HTTP transport: neither delivers cancel reasons)."""
    outbound = request_outbound(ctx)
    outbound = getattr(outbound, "_inner", outbound)  # 2026-07-28 wraps the dispatch context
    return getattr(outbound, "_dispatcher", None)
