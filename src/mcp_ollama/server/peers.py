"""``Peers``: the handshake-era connections this server serves, with each one's ``logging/setLevel``
threshold and ``resources/subscribe`` set.

Handshake-era clients get change notifications through their session; 2026-07-28 clients through
the ``subscriptions/listen`` bus. ``Peers.resource_updated`` and ``Peers.resources_changed`` feed
both paths.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from mcp.server.connection import Connection, allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent, SubscriptionBus
from mcp_types import LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParams

from .request import is_modern
from .sdk import connection as sdk_connection

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

DEFAULT_CLIENT_LOG_LEVEL: LoggingLevel = "warning"
"""What a handshake-era client receives until it sends ``logging/setLevel``."""


class _Peer:
    """One handshake-era connection: where to send, what it asked for, and whose it is."""

    def __init__(self, connection: Connection, principal: str) -> None:
        self.connection = connection
        self.principal = principal
        self.log_level: LoggingLevel = DEFAULT_CLIENT_LOG_LEVEL
        self.subscriptions: set[str] = set()
        self.listed = False
        """Whether it has sent ``resources/list``: only then has it a list that can go stale."""


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

    def listed(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """This request's connection has listed resources: from now on it hears ``list_changed``."""
        peer = self.peer(ctx)
        if peer is not None:
            peer.listed = True

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

        Handshake era: to the connections that have sent ``resources/list``; one that never listed
        has no list to refresh (a client that only calls ``chat`` is not woken by every session
        another of its user's connections starts). 2026-07-28: to the principal's
        ``subscriptions/listen`` streams, which asked for it.

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
                    if peer.principal == principal and peer.listed and peer.connection.initialized.is_set():
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
