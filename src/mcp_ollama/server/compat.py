"""Where the SDK's ``MCPServer`` falls short of the MCP spec, and what closes each gap.

- ``SpecMiddleware``: an unknown tool is JSON-RPC -32602 (the SDK answers an ``isError``
  result), so is an unknown prompt or a missing prompt argument (the SDK answers code 0),
  and ``initialize`` advertises ``resources.listChanged`` truthfully (the SDK's default
  ``NotificationOptions`` always say ``false``).
- ``server.peers.Peers``: each handshake-era connection's ``logging/setLevel`` threshold and
  ``resources/subscribe`` set, and change notifications that reach clients of both eras.
- ``server.errors.not_found_code``: -32002 for a missing resource in the handshake era (the SDK
  answers -32602 in every era), -32602 from 2026-07-28.
- ``ErrorCodeMiddleware``: an exception escaping a handler is -32603 with a sentence (the SDK
  answers code 0).
- ``TaskCapabilityMiddleware``: 2025-11-25 ``initialize`` advertises ``capabilities.tasks`` and
  ``tools/list`` marks the task tools ``execution.taskSupport: "optional"`` (the SDK has no
  hook for either; the 2026-07-28 extension is advertised by its ``Extension``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from pydantic import ValidationError

from ..errors import McpOllamaError
from .errors import protocol_error
from .peers import Peers

logger = logging.getLogger(__name__)


_SINGLE_PAGE_LISTS = frozenset({"tools/list", "prompts/list", "resources/templates/list"})


class SpecMiddleware:
    """Server middleware that makes a few answers match the spec (see the module docstring)."""

    def __init__(self, has_tool: Callable[[str], bool], peers: Peers) -> None:
        self._has_tool = has_tool
        self._peers = peers

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        if ctx.request_id is not None and ctx.method != "initialize":
            self._peers.peer(ctx)  # every handshake-era connection hears list_changed
        if ctx.request_id is not None and ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            name = ctx.params.get("name")
            if isinstance(name, str) and not self._has_tool(name):
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name!r}", data={"name": name})
        if (
            ctx.request_id is not None
            and ctx.method in _SINGLE_PAGE_LISTS
            and isinstance(ctx.params, Mapping)
            and ctx.params.get("cursor") is not None
        ):
            # These lists fit one page, so no cursor of ours can exist; the spec wants -32602.
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor")
        try:
            result = await call_next(ctx)
        except ValueError as exc:
            if ctx.method != "prompts/get":
                raise
            # MCPServer reports an unknown prompt or a missing argument as a bare ValueError,
            # which reaches the wire as error code 0; it is the caller's params that are wrong.
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc
        if ctx.method == "initialize" and isinstance(result, dict):
            resources = result.get("capabilities", {}).get("resources")
            if isinstance(resources, dict):
                # Sessions appear and disappear at run time, and we say so.
                resources["listChanged"] = True
        return result


# ---------------------------------------------------------------------------- tasks (2025-11-25)

TASKS_PROTOCOL_VERSION = "2025-11-25"


class TaskCapabilityMiddleware:
    """Advertises 2025-11-25 core tasks: the ``tasks`` capability, ``execution`` on task tools."""

    def __init__(self, task_tools: frozenset[str]) -> None:
        self._task_tools = task_tools

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        result = await call_next(ctx)
        if not isinstance(result, dict) or ctx.request_id is None:
            return result
        if ctx.method == "initialize" and result.get("protocolVersion") == TASKS_PROTOCOL_VERSION:
            capabilities = result.get("capabilities")
            if isinstance(capabilities, dict):
                capabilities["tasks"] = {
                    "list": {},
                    "cancel": {},
                    "requests": {"tools": {"call": {}}},
                }
        elif ctx.method == "tools/list" and ctx.protocol_version == TASKS_PROTOCOL_VERSION:
            for tool in result.get("tools", []):
                if isinstance(tool, dict) and tool.get("name") in self._task_tools:
                    tool["execution"] = {"taskSupport": "optional"}
        return result


class ErrorCodeMiddleware:
    """Every failure of a request is a JSON-RPC error with a real code and a sentence.

    The SDK answers an exception escaping a handler with error code 0 and its bare text.
    Ours (``McpOllamaError``) already say what happened and what to do, so they keep their
    text, under the code their class's disposition gives (``server.errors.protocol_error``);
    anything else is logged and told as an internal error. ``MCPError``
    passes through untouched. Install it outermost, so it sees what the others let through.
    """

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        try:
            return await call_next(ctx)
        except (MCPError, ValidationError):  # the SDK maps these itself (ValidationError: -32602)
            raise
        except McpOllamaError as exc:
            if ctx.request_id is None:
                raise
            raise protocol_error(ctx, exc) from exc
        except Exception as exc:
            if ctx.request_id is None:
                raise
            logger.exception("%s failed", ctx.method)
            raise MCPError(
                code=INTERNAL_ERROR,
                message=f"Internal error while answering {ctx.method} ({type(exc).__name__}). The "
                "server keeps running; if this repeats, report it with the server's log (stderr).",
            ) from exc
