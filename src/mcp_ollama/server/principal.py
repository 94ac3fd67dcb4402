"""Who a request is from: the name of the bearer token it came with, or ``local``.

Over HTTP with a tokens file, the SDK's bearer middleware puts the verified token on the ASGI
scope (``scope["user"]``, an ``AuthenticatedUser``) and in a context variable the SDK copies into
handler tasks; the token verifier of ``transports/http.py`` issues it with the token's name as
``client_id``. Over stdio, and over HTTP on loopback without tokens, nobody authenticates and
every request is from ``local``. Per-user ownership of sessions, jobs and tasks builds on this.
"""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

from ..store import LOCAL as LOCAL_PRINCIPAL

__all__ = ["LOCAL_PRINCIPAL", "current_principal", "principal", "scope_principal"]


def principal(ctx: Context[Any, Any] | ServerRequestContext[Any, Any]) -> str:
    """The name of the token this request was authenticated with; ``local`` where there is none."""
    request_context = ctx.request_context if isinstance(ctx, Context) else ctx
    scope = getattr(request_context.request, "scope", None)
    found = scope_principal(scope) if isinstance(scope, dict) else None
    return found if found is not None else current_principal()


def current_principal() -> str:
    """The principal of the request being handled, from the token the SDK keeps in a context variable."""
    token = get_access_token()
    return token.client_id if token is not None else LOCAL_PRINCIPAL


def scope_principal(scope: Any) -> str | None:
    """The token name the bearer middleware left on an ASGI scope, or None (no auth on this server)."""
    user = scope.get("user")
    return user.access_token.client_id if isinstance(user, AuthenticatedUser) else None
