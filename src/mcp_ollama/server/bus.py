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

from .principal import current_principal

logger = logging.getLogger(__name__)

Listener = Callable[[ServerEvent], None]


class PrincipalBus:
    """A ``SubscriptionBus`` whose listeners belong to the principal that subscribed them."""

    def __init__(self) -> None:
        self._listeners: dict[object, tuple[str, Listener]] = {}

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
        token = object()
        self._listeners[token] = (current_principal(), listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe
