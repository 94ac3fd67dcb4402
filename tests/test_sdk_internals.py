"""The SDK internals ``server/sdk.py`` names, exercised on a real server: an SDK upgrade that
moves one fails here, by name, before anything subtler breaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import ToolManager
from mcp_types import ToolAnnotations

from mcp_ollama.config import Settings
from mcp_ollama.server import build_server, sdk

from .conftest import eventually

pytestmark = pytest.mark.anyio


def test_the_pinned_sdk_is_the_one_the_internals_were_checked_with() -> None:
    assert version("mcp") == sdk.CHECKED_WITH, (
        "re-check every accessor in server/sdk.py, then bump CHECKED_WITH"
    )


def test_lowlevel_server_and_tool_manager(settings: Settings) -> None:
    server = build_server(settings)
    lowlevel = sdk.lowlevel_server(server)
    assert isinstance(lowlevel, Server)
    assert isinstance(lowlevel.middleware, list) and lowlevel.middleware  # ours are in it
    manager = sdk.tool_manager(server)
    assert isinstance(manager, ToolManager)
    assert manager.get_tool("chat") is not None and manager.get_tool("no such tool") is None


def _echo(label: str, default: int = 0) -> Callable[..., Awaitable[str]]:
    async def echo(text: str, n: int = default) -> str:
        """Say it again."""
        return f"{text} from {label} ({n})"

    return echo


async def test_a_tool_definition_is_built_once_and_each_server_calls_its_own_function() -> None:
    annotations = ToolAnnotations(title="Echo", read_only_hint=True)
    servers: dict[str, MCPServer[Any]] = {label: MCPServer(label) for label in ("one", "two", "three")}
    for label, server in servers.items():
        sdk.add_tool(
            server, _echo(label, 7 if label == "three" else 0), title="Echo", annotations=annotations
        )
    one, two, three = (sdk.tool_manager(server).get_tool("echo") for server in servers.values())
    assert one is not None and two is not None and three is not None
    assert one is not two and one.fn_metadata is two.fn_metadata  # built once, copied per server
    assert three.fn_metadata is not one.fn_metadata  # a default is part of the definition
    assert three.parameters["properties"]["n"]["default"] == 7
    for label, server in servers.items():
        async with Client(server) as client:
            result = await client.call_tool("echo", {"text": "hi"})
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert result.content[0].text == f"hi from {label} ({7 if label == 'three' else 0})"  # type: ignore[union-attr]
        assert listed["echo"].title == "Echo" and listed["echo"].annotations == annotations


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_connection_and_request_outbound_inside_a_request(mode: str) -> None:
    seen: dict[str, Any] = {}
    server: MCPServer[Any] = MCPServer("probe")

    @server.tool()
    async def probe(ctx: Context[Any, Any]) -> str:
        request_context: ServerRequestContext[Any, Any] = ctx.request_context
        seen["connection"] = sdk.connection(request_context)
        outbound = sdk.request_outbound(request_context)
        seen["cancel"] = getattr(outbound, "cancel_requested", None)
        return "ok"

    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        await client.call_tool("probe", {})
    assert isinstance(seen["connection"], Connection)
    assert isinstance(seen["cancel"], anyio.Event)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_dispatch_channel_is_shared_by_a_connections_requests_and_notifications(mode: str) -> None:
    """What ties a ``notifications/cancelled`` (and its reason) to the request it cancels."""
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    seen: dict[str, list[object]] = {"requests": [], "notifications": []}
    server: MCPServer[Any] = MCPServer("probe")

    @server.tool()
    async def probe(ctx: Context[Any, Any]) -> str:
        seen["requests"].append(sdk.dispatch_channel(ctx.request_context))
        return "ok"

    async def watch(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        if ctx.request_id is None:
            seen["notifications"].append(sdk.dispatch_channel(ctx))
        return await call_next(ctx)

    sdk.lowlevel_server(server).middleware.append(watch)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        await client.call_tool("probe", {})
        await client.call_tool("probe", {})
    first, second = seen["requests"]
    if mode == "legacy":  # a JSON-RPC stream: requests and notifications share its dispatcher
        assert isinstance(first, JSONRPCDispatcher) and second is first
        assert seen["notifications"] and all(n is first for n in seen["notifications"])
    else:  # in-process dispatch: no notification carries a cancel, so there is nothing to tie
        assert first is None and second is None


def test_deferred_tools_are_registered_once_by_whatever_first_asks() -> None:
    server: MCPServer[Any] = MCPServer("deferred")
    calls: list[str] = []

    def register() -> None:
        calls.append("register")
        sdk.add_tool(server, _echo("deferred"), title="Echo", annotations=ToolAnnotations(title="Echo"))

    manager = sdk.defer_tools(server, register)
    assert sdk.tool_manager(server) is manager and not manager.built and calls == []
    assert manager.get_tool("echo") is not None  # the first question builds them
    assert [tool.name for tool in manager.list_tools()] == ["echo"]
    manager.build()
    assert manager.built and calls == ["register"]


def test_deferred_tools_that_fail_to_register_fail_again_when_next_asked() -> None:
    server: MCPServer[Any] = MCPServer("deferred")
    attempts: list[int] = []

    def register() -> None:
        attempts.append(1)
        sdk.add_tool(server, _echo("deferred"), title="Echo", annotations=ToolAnnotations(title="Echo"))
        if len(attempts) < 3:
            raise RuntimeError("a tool definition could not be built")

    manager = sdk.defer_tools(server, register)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            manager.list_tools()
        assert not manager.built
    assert [tool.name for tool in manager.list_tools()] == ["echo"] and manager.built
    assert len(attempts) == 3


async def test_a_stdio_server_builds_its_tools_after_the_first_answer_or_when_asked(
    settings: Settings,
) -> None:
    answered = anyio.Event()
    server = build_server(settings, first_answer=answered)
    manager = sdk.tool_manager(server)
    assert isinstance(manager, sdk.DeferredTools) and not manager.built
    async with Client(server) as client:  # in memory: nothing sets the event, so the list builds them
        assert "chat" in {tool.name for tool in (await client.list_tools()).tools}
    assert manager.built

    answered = anyio.Event()
    server = build_server(settings, first_answer=answered)
    manager = sdk.tool_manager(server)
    assert isinstance(manager, sdk.DeferredTools)
    async with Client(server):
        assert not manager.built  # the lifespan is up, and still nothing asked for them
        answered.set()
        assert await eventually(lambda: manager.built, timeout=30)


def test_a_server_without_a_first_answer_event_has_its_tools_at_once(settings: Settings) -> None:
    manager = sdk.tool_manager(build_server(settings))
    assert isinstance(manager, sdk.DeferredTools) and manager.built
