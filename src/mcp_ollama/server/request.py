"""What a request says about itself beyond its params: its era, whether anyone hears its progress,
and whether the peer has cancelled it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .sdk import request_outbound


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
