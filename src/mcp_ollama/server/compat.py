"""Where the SDK's ``MCPServer`` falls short of the MCP spec, and what closes each gap.

- ``SpecMiddleware``: an unknown tool is JSON-RPC -32602 (the SDK answers an ``isError``
  result), so is an unknown prompt or a missing prompt argument (the SDK answers code 0),
  and ``initialize`` advertises ``resources.listChanged`` truthfully (the SDK's default
  ``NotificationOptions`` always say ``false``).
- ``Peers``: the handshake-era connections this server serves, with each one's
  ``logging/setLevel`` threshold and ``resources/subscribe`` set. Handshake-era clients get
  change notifications through their session; 2026-07-28 clients through the
  ``subscriptions/listen`` bus. ``Peers.resource_updated`` and ``Peers.resources_changed``
  feed both paths.
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
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import anyio
from mcp.server.connection import Connection, allowed_log_levels
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from ..errors import McpOllamaError
from .errors import protocol_error
from .sdk import connection as sdk_connection
from .sdk import request_outbound

logger = logging.getLogger(__name__)


LOG_LEVELS: tuple[LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_SINGLE_PAGE_LISTS = frozenset({"tools/list", "prompts/list", "resources/templates/list"})

DEFAULT_CLIENT_LOG_LEVEL: LoggingLevel = "warning"
"""What a handshake-era client receives until it sends ``logging/setLevel``."""


def is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request arrived on the 2026-07-28 per-request envelope."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def wants_progress(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether anyone receives this request's progress (a ``progressToken``, or an in-process callback).

    Without one the SDK drops progress anyway, so a call need not follow its job at all.
    """
    if ctx.meta is not None and ctx.meta.get("progress_token") is not None:
        return True
    outbound = request_outbound(ctx)
    outbound = getattr(outbound, "_inner", outbound)  # 2026-07-28 wraps the dispatch context
    return (
        getattr(outbound, "_on_progress", None) is not None
        or getattr(outbound, "_progress_token", None) is not None
    )


def cancel_check(ctx: ServerRequestContext[Any, Any]) -> Callable[[], bool]:
    """Whether the peer has sent ``notifications/cancelled`` for this request, asked at any moment.

    The SDK keeps the flag on the request's dispatch context, behind the per-request session;
    where it cannot be found, the answer is always "no" (the turn is then stored as before).
    """
    event = getattr(request_outbound(ctx), "cancel_requested", None)
    return event.is_set if isinstance(event, anyio.Event) else _never


def _never() -> bool:
    return False


class _Peer:
    """One handshake-era connection: where to send, what it asked for, and whose it is."""

    def __init__(self, connection: Connection, principal: str) -> None:
        self.connection = connection
        self.principal = principal
        self.log_level: LoggingLevel = DEFAULT_CLIENT_LOG_LEVEL
        self.subscriptions: set[str] = set()


class ScopedBus(SubscriptionBus, Protocol):
    """A subscription bus that can deliver an event to one principal's streams only."""

    async def publish(self, event: ServerEvent, principal: str | None = None) -> None: ...


class Peers:
    """Handshake-era connections and the modern subscription bus, as one notification target.

    Change notifications about a session reach only connections (and listen streams) of the
    session's principal: a URI is the same for everyone, a session is not.
    """

    def __init__(self, bus: ScopedBus, principal_of: Callable[[ServerRequestContext[Any, Any]], str]) -> None:
        self._bus = bus
        self._principal_of = principal_of
        self._announcing: set[str] = set()
        self._again: set[str] = set()
        self._peers: weakref.WeakKeyDictionary[Connection, _Peer] = weakref.WeakKeyDictionary()

    def peer(self, ctx: ServerRequestContext[Any, Any]) -> _Peer | None:
        """The record for this request's connection; ``None`` in the 2026-07-28 era."""
        if is_modern(ctx):
            return None
        connection = sdk_connection(ctx)
        found = self._peers.get(connection)
        if found is None:
            found = self._peers[connection] = _Peer(connection, self._principal_of(ctx))
            connection.exit_stack.callback(self._peers.pop, connection, None)
        return found

    def set_log_level(self, ctx: ServerRequestContext[Any, Any], level: LoggingLevel) -> None:
        peer = self.peer(ctx)
        if peer is not None:
            peer.log_level = level

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        peer = self.peer(ctx)
        if peer is not None:
            peer.subscriptions.add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        peer = self.peer(ctx)
        if peer is not None:
            peer.subscriptions.discard(uri)

    async def resource_updated(self, uri: str, principal: str) -> None:
        """``notifications/resources/updated`` to ``principal``'s subscribers of ``uri``, in both eras."""
        await self._bus.publish(ResourceUpdated(uri=uri), principal)
        for peer in list(self._peers.values()):
            if peer.principal == principal and uri in peer.subscriptions:
                await self._send(peer, lambda c: c.send_resource_updated(uri))

    async def resources_changed(self, principal: str) -> None:
        """``notifications/resources/list_changed`` to ``principal``'s connections, in both eras.

        Coalesced: while one call is telling every connection, others return at once and that
        call goes round once more at the end. Fifty new sessions at once on fifty connections
        cost a few rounds, not 2,500 notifications, and no chat waits for another's fan-out.
        """
        if principal in self._announcing:
            self._again.add(principal)
            return
        self._announcing.add(principal)
        try:
            while True:
                self._again.discard(principal)
                await self._bus.publish(ResourcesListChanged(), principal)
                for peer in list(self._peers.values()):
                    if peer.principal == principal and peer.connection.initialized.is_set():
                        await self._send(peer, lambda c: c.send_resource_list_changed())
                if principal not in self._again:
                    break
        finally:
            self._announcing.discard(principal)

    async def _send(self, peer: _Peer, send: Callable[[Connection], Awaitable[None]]) -> None:
        try:
            await send(peer.connection)
        except Exception:  # a peer that went away must not fail the turn that notifies it
            logger.debug("dropping a notification for a closed connection", exc_info=True)
            self._peers.pop(peer.connection, None)

    async def log(self, ctx: ServerRequestContext[Any, Any], level: LoggingLevel, message: str) -> None:
        """``notifications/message`` for this request, if the client asked for ``level``.

        Handshake era: at or above the connection's ``logging/setLevel`` threshold. 2026-07-28:
        only when the request's ``_meta`` opted in at or below ``level``.
        """
        peer = self.peer(ctx)
        if peer is not None:
            if LOG_LEVELS.index(level) < LOG_LEVELS.index(peer.log_level):
                return
        elif level not in allowed_log_levels(ctx.protocol_version, cast(Mapping[str, Any], ctx.meta or {})):
            return
        notification = LoggingMessageNotification(
            params=LoggingMessageNotificationParams(level=level, logger="mcp-ollama", data=message)
        )
        try:
            await ctx.session.send_notification(notification, related_request_id=ctx.request_id)
        except Exception:  # logging to the client is best effort
            logger.debug("could not send a log notification", exc_info=True)


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
