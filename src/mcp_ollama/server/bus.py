"""``PrincipalBus``: 2026-07-28 change events reach only the listen streams of the session's principal.

The SDK's in-memory bus hands every event to every ``subscriptions/listen`` stream that asked
for its kind. Session URIs are the same for every principal (``chat://sessions/demo`` may be
anyone's ``demo``), so each stream is tagged with the principal that opened it, and an event
about a principal's session goes to that principal's streams only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio.lowlevel
from mcp.server.subscriptions import ServerEvent

from ..errors import LimitReached
from .errors import protocol_error
from .principal import current_principal

logger = logging.getLogger(__name__)

Listener = Callable[[ServerEvent], None]


class PrincipalBus:
    """A ``SubscriptionBus`` whose listeners belong to the principal that subscribed them.

    Each principal may hold ``max_per_principal`` streams: the SDK's own bound (1,024 streams
    for the whole server) would otherwise let one user's streams refuse everyone else's.
    """

    def __init__(self, max_per_principal: int = 16) -> None:
        self._listeners: dict[object, tuple[str, Listener]] = {}
        self._max = max_per_principal

    async def publish(self, event: ServerEvent, principal: str | None = None) -> None:
        """Deliver ``event`` to ``principal``'s listeners (everyone's when None)."""
        for who, listener in list(self._listeners.values()):
            if principal is not None and who != principal:
                continue
            try:
                listener(event)
            except Exception:  # one broken stream must not starve the others
                logger.exception("a subscription listener raised; continuing")
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener`` for the calling principal; -32603 with a sentence past its bound."""
        who = current_principal()
        if sum(1 for owner, _ in self._listeners.values() if owner == who) >= self._max:
            limit = LimitReached(
                "change-notification stream",
                "open",
                self._max,
                "--max-streams-per-user",
                "close one (end a subscriptions/listen request) and try again.",
            )
            raise protocol_error(None, limit)
        token = object()
        self._listeners[token] = (who, listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe
