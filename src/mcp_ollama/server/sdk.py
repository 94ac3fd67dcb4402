"""Every SDK internal this package touches, named once, each checked against ``mcp`` 2.3.0.

The SDK offers no public way to these; ``tests/test_sdk_internals.py`` exercises each one on a
real server and fails by name when an SDK upgrade moves it. Nothing else in the package reaches
behind the SDK's public API: it calls these.

| accessor            | internal                                   | what for                               |
|---------------------|--------------------------------------------|----------------------------------------|
| ``lowlevel_server`` | ``MCPServer._lowlevel_server``             | middleware, run(), the HTTP manager     |
| ``tool_manager``    | ``MCPServer._tool_manager``                | is a tool known, its argument model     |
| ``add_tool``        | ``ToolManager._tools``                     | a tool's definition built once          |
| ``defer_tools``     | ``MCPServer._tool_manager`` (replaced)     | definitions built after the handshake   |
| ``connection``      | ``ServerSession._connection``              | a handshake-era client's identity       |
| ``request_outbound``| ``ServerSession._request_outbound``        | the cancel flag, whether progress goes  |
| ``dispatch_channel``| ``_JSONRPCDispatchContext._dispatcher``    | which cancel notification is whose      |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool, ToolManager
from mcp_types import ToolAnnotations

from .schema_shape import compact

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


_built: dict[tuple[object, ...], Tool] = {}
"""Tool definitions already built in this process, by function code and registration arguments."""


def add_tool(
    server: MCPServer[Any], fn: Callable[..., Any], *, title: str, annotations: ToolAnnotations
) -> None:
    """``server.add_tool(fn, ...)``, building each tool's definition once per process.

    ``Tool.from_function`` builds a pydantic model of the arguments and their JSON schemas, most of
    the cost of building a server (about 5 ms a tool). A definition depends only on the function's
    signature (its defaults included) and docstring and these arguments, so a server built again
    (each in-memory test) reuses it, with its own function: closures of one ``def`` share their
    code. Nothing in a definition is state: each server gets its own copy. Its output schema is
    published as ``schema_shape.compact`` writes it (the SDK reads ``fn_metadata.output_schema``
    live; ``tests/test_schema_shape.py`` checks ``tools/list`` shows it).
    """
    defaults = (repr(getattr(fn, "__defaults__", None)), repr(getattr(fn, "__kwdefaults__", None)))
    key = (getattr(fn, "__code__", fn), fn.__qualname__, *defaults, title, annotations.model_dump_json())
    built = _built.get(key)
    if built is None:
        built = _built[key] = Tool.from_function(fn, title=title, annotations=annotations)
        if built.fn_metadata.output_schema is not None:
            built.fn_metadata.output_schema = compact(built.fn_metadata.output_schema)
    tools: dict[str, Tool] = tool_manager(server)._tools
    tools[built.name] = built.model_copy(update={"fn": fn})


class DeferredTools(ToolManager):
    """A ``ToolManager`` whose tools ``register`` adds when first asked for, or at ``build()``.

    Building the definitions (pydantic models and JSON schemas) is about 25 ms that ``initialize``
    does not need: stdio builds them just after its answer, while the host reads it.
    """

    def __init__(self, register: Callable[[], None]) -> None:
        super().__init__()
        self._register: Callable[[], None] | None = register

    @property
    def built(self) -> bool:
        """Whether the tools are registered yet."""
        return self._register is None

    def build(self) -> None:
        """Register the tools now, once; later calls do nothing. If registering fails, the next
        call tries again (and fails as loudly): a server never lists a part of its tools as all."""
        register, self._register = self._register, None  # what register() itself asks sees its tools
        if register is None:
            return
        try:
            register()
        except BaseException:
            self._register = register
            raise

    def get_tool(self, name: str) -> Tool | None:
        self.build()
        return super().get_tool(name)

    def list_tools(self) -> list[Tool]:
        self.build()
        return super().list_tools()

    def remove_tool(self, name: str) -> None:
        self.build()
        super().remove_tool(name)


def defer_tools(server: MCPServer[Any], register: Callable[[], None]) -> DeferredTools:
    """Give ``server`` a ``DeferredTools`` whose ``register`` adds every tool (call before any)."""
    manager = DeferredTools(register)
    manager.warn_on_duplicate_tools = tool_manager(server).warn_on_duplicate_tools
    server._tool_manager = manager
    return manager


def tool(
    server: MCPServer[Any], *, title: str, annotations: ToolAnnotations
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@server.tool(...)`` through ``add_tool``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        add_tool(server, fn, title=title, annotations=annotations)
        return fn

    return register


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
