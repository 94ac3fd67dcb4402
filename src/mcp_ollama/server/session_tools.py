"""``delete_session`` and ``clear_session``: a stored conversation removed, or its messages forgotten."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult

from ..errors import McpOllamaError, SessionNotFound
from ..store import Change, SessionInfo, validate_session_id
from . import sdk
from .chat_tools import SessionIdArg
from .errors import tool_error
from .peers import Peers
from .principal import principal
from .replicas import tell
from .results import SessionChange
from .state import AppState, app_state, session_uri, structured_result, tool_annotations


def register(server: MCPServer[AppState], peers: Peers) -> None:
    """``delete_session`` and ``clear_session``, on ``server``; changes are told through ``peers``."""

    @sdk.tool(
        server,
        title="Delete a chat session",
        annotations=tool_annotations(
            "Delete a chat session", read_only=False, destructive=True, idempotent=True
        ),
    )
    async def delete_session(
        session_id: SessionIdArg, ctx: Context[AppState, Any]
    ) -> Annotated[CallToolResult, SessionChange]:
        """Delete a stored conversation and all its messages. This cannot be undone."""
        return await _change_session(ctx, peers, session_id, delete=True)

    @sdk.tool(
        server,
        title="Clear a chat session's history",
        annotations=tool_annotations(
            "Clear a chat session's history", read_only=False, destructive=True, idempotent=True
        ),
    )
    async def clear_session(
        session_id: SessionIdArg, ctx: Context[AppState, Any]
    ) -> Annotated[CallToolResult, SessionChange]:
        """Forget a conversation's messages but keep its session_id, so the next chat starts fresh."""
        return await _change_session(ctx, peers, session_id, delete=False)


async def _change_session(
    ctx: Context[AppState, Any], peers: Peers, session_id: str, *, delete: bool
) -> CallToolResult:
    store = app_state(ctx).store
    who = principal(ctx)

    def change(sid: str) -> SessionInfo:
        info = store.get_session(sid, principal=who)
        changed = info is not None and (
            store.delete_session(sid, principal=who) if delete else store.clear_session(sid, principal=who)
        )
        if info is None or not changed:
            raise SessionNotFound(sid)
        return info

    try:
        sid = validate_session_id(session_id)
        info = await anyio.to_thread.run_sync(change, sid)
    except McpOllamaError as exc:
        return tool_error(exc)
    await tell(peers, store, Change(who, session_uri(sid), list_changed=delete))
    result = SessionChange(session_id=sid, deleted=delete, cleared_messages=info.message_count)
    verb = "Deleted" if delete else "Cleared"
    return structured_result(f"{verb} session {sid} ({info.message_count} messages).", result)
