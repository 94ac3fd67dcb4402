"""The one boundary where domain errors (``mcp_ollama.errors``) become MCP errors.

In a tool, every domain error is an ``isError`` result: its sentence is for the model and the
person, who can act on it (``tool_error``). Anywhere else (resources, prompts, task methods, the
middleware that catches what a handler let through) it is a JSON-RPC error whose code is the
error class's ``disposition`` (``protocol_error``). Nothing else in the package builds either
from a domain error. A remote principal's text has the Ollama servers' addresses taken out.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..errors import Disposition, McpOllamaError
from .principal import LOCAL_PRINCIPAL, current_principal
from .redact import hide_addresses, public_message

RESOURCE_NOT_FOUND = -32002
"""The 2025-11-25 spec's code for a resource that does not exist (the SDK has no constant)."""


def not_found_code(ctx: ServerRequestContext[Any, Any]) -> int:
    """The error code for a missing resource in this request's protocol era."""
    return INVALID_PARAMS if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS else RESOURCE_NOT_FOUND


def public_text(error: Exception | str) -> str:
    """What the caller is told of ``error``: all of it for the operator (``local``); for anyone
    else, the same sentence without the Ollama servers' addresses (``redact``), which only the
    operator needs and the server's log keeps."""
    if current_principal() == LOCAL_PRINCIPAL:
        return str(error)
    if isinstance(error, McpOllamaError):
        return public_message(error, ())
    return hide_addresses(str(error), ())


def tool_error(exc: Exception) -> CallToolResult:
    """A failed tool call, told in the error's own sentence."""
    return CallToolResult(content=[TextContent(type="text", text=public_text(exc))], is_error=True)


def protocol_error(
    ctx: ServerRequestContext[Any, Any] | None, exc: McpOllamaError, *, uri: str | None = None
) -> MCPError:
    """The JSON-RPC error for ``exc`` outside a tool; ``uri`` when a resource read failed.

    A missing thing is the era's resource-not-found code only for a resource (``uri`` given and
    ``ctx`` known); elsewhere what was named is an argument that cannot be served: -32602.
    """
    data = {"uri": uri[:200]} if uri is not None else None
    match exc.disposition:
        case Disposition.NOT_FOUND if uri is not None and ctx is not None:
            code = not_found_code(ctx)
        case Disposition.NOT_FOUND | Disposition.INVALID_PARAMS:
            code = INVALID_PARAMS
        case _:
            code = INTERNAL_ERROR
    return MCPError(code=code, message=public_text(exc), data=data)
