"""How long each host waits for a tool call, learned from the cancels it sends when it gives up.

A host whose own timeout runs out sends ``notifications/cancelled`` with a reason naming the
timeout: the TypeScript SDK ``SdkError … Request timed out``, the 1.x SDKs ``MCP error -32001:
Request timed out``, the Python SDK 2.x ``timed out after 10.0s``. That is not a user asking
to stop: the model goes on and its answer is kept for ``chat_result``. A user's stop (any
other reason, or none) still stops the model at once.

The SDK applies the cancel to the request's scope before the notification reaches any handler,
so ``Patience`` (also a server middleware) notes each reason as the notification passes, keyed
by the connection's dispatcher and the request id, and a cancelled request asks for its own
reason (``timed_out``), waiting a moment for it. Requests on the 2026-07-28 HTTP transport are
cancelled by closing the stream, with no reason: those are plain stops.

What a client waited before it timed out is kept per principal and ``clientInfo`` name, in the
store (``client_timeouts``) and here; ``deadline`` answers that client's next calls a margin
before it (or at the configured answer deadline, if that comes first).
"""

from __future__ import annotations

import logging
import math
import re
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from mcp.server.context import HandlerResult, ServerRequestContext

from .principal import principal
from .request import cancel_check
from .sdk import connection, dispatch_channel

if TYPE_CHECKING:
    from ..store import Store

logger = logging.getLogger(__name__)

TIMEOUT_REASON = re.compile(r"time[sd]?[\s_-]*out|-32001", re.IGNORECASE)
"""A cancel reason that says the client's own timeout ran out (see the module docstring)."""
REASON_WAIT_SECONDS = 1.0
"""How long a cancelled request waits for its notification's reason (it is on its way: the SDK
cancels the request's scope first, then hands the notification on)."""
LEARNED_FOR = timedelta(days=30)
"""How long a learned timeout is trusted: a host's setting may have been raised since."""
SHORTEST_DEADLINE = 0.5
"""The earliest a learned timeout makes a call answer, in seconds."""
REASONS_KEPT = 64
"""Cancel reasons kept per connection, newest first, for requests yet to ask for theirs."""


def is_timeout(reason: str | None) -> bool:
    """Whether a ``notifications/cancelled`` reason says the client's timeout ran out."""
    return reason is not None and TIMEOUT_REASON.search(reason) is not None


def answer_before(timeout: float) -> float:
    """When to answer a client that gives up after ``timeout`` seconds: a margin before it."""
    return max(SHORTEST_DEADLINE, timeout - max(1.0, 0.15 * timeout))


class _Reason:
    def __init__(self) -> None:
        self.text: str | None = None
        self.arrived = anyio.Event()


class Patience:
    """Cancel reasons in flight, and each client's learned timeout. Install it as server middleware."""

    def __init__(self) -> None:
        self._reasons: weakref.WeakKeyDictionary[object, OrderedDict[str, _Reason]] = (
            weakref.WeakKeyDictionary()
        )
        self._learned: dict[tuple[str, str], float | None] = {}

    # -- middleware: note every cancel's reason as it passes

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        if ctx.request_id is None and ctx.method == "notifications/cancelled":
            params = ctx.params if isinstance(ctx.params, Mapping) else {}
            request_id, reason = params.get("requestId"), params.get("reason")
            channel = dispatch_channel(ctx)
            if channel is not None and isinstance(request_id, str | int):
                found = self._reason(channel, request_id)
                found.text = reason if isinstance(reason, str) else None
                found.arrived.set()
        return await call_next(ctx)

    def _reason(self, channel: object, request_id: str | int) -> _Reason:
        reasons = self._reasons.setdefault(channel, OrderedDict())
        key = str(request_id)
        found = reasons.get(key)
        if found is None:
            found = reasons[key] = _Reason()
            while len(reasons) > REASONS_KEPT:
                reasons.popitem(last=False)
        return found

    async def timed_out(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether the peer cancelled this request because its own timeout ran out.

        Call it once the request's scope is cancelled; it waits (shielded, at most
        ``REASON_WAIT_SECONDS``) for the notification's reason. False for anything but a
        ``notifications/cancelled`` naming a timeout: a user's stop, a closed connection, shutdown.
        """
        channel = dispatch_channel(ctx)
        if channel is None or ctx.request_id is None or not cancel_check(ctx)():
            return False
        found = self._reason(channel, ctx.request_id)
        with anyio.move_on_after(REASON_WAIT_SECONDS, shield=True):
            await found.arrived.wait()
        self._reasons.get(channel, OrderedDict()).pop(str(ctx.request_id), None)
        return is_timeout(found.text)

    # -- learned timeouts

    async def deadline(self, store: Store, ctx: ServerRequestContext[Any, Any], configured: float) -> float:
        """How long this request may wait before answering: the configured answer deadline (0: no
        limit), or a margin before the timeout its client was seen to give up at, if sooner."""
        limit = configured if configured > 0 else math.inf
        client = client_name(ctx)
        if client is None:
            return limit
        key = (principal(ctx), client)
        if key not in self._learned:
            self._learned[key] = await anyio.to_thread.run_sync(_read, store, *key)
        learned = self._learned[key]
        return limit if learned is None else min(limit, answer_before(learned))

    async def learn(self, store: Store, ctx: ServerRequestContext[Any, Any], waited: float) -> float | None:
        """This request's client timed it out after ``waited`` seconds: answer it sooner from now
        on. Returns the deadline its next calls get (None: a client with no name, nothing learned)."""
        client = client_name(ctx)
        if client is None or waited <= 0:
            return None
        who = principal(ctx)
        self._learned[(who, client)] = waited
        try:
            with anyio.CancelScope(shield=True):
                write = partial(store.learn_client_timeout, client, waited, principal=who)
                await anyio.to_thread.run_sync(write)
        except Exception:  # a hint, not a record: kept in memory all the same
            logger.warning("could not store the timeout learned for %s", client, exc_info=True)
        return answer_before(waited)


def client_name(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The ``clientInfo`` name the request's client gave (at ``initialize``, or in its envelope)."""
    params = connection(ctx).client_params
    info = params.client_info if params is not None else None
    name = info.name.strip()[:200] if info is not None else ""
    return name or None


def _read(store: Store, who: str, client: str) -> float | None:
    try:
        found = store.client_timeout(client, principal=who)
    except Exception:  # no store: nothing learned yet
        logger.debug("could not read the timeout learned for %s", client, exc_info=True)
        return None
    if found is None or datetime.now(UTC) - found[1] > LEARNED_FOR:
        return None
    return found[0]
