"""The prompts (``system_prompt``, ``continue_session``) and argument completions."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CompleteRequestParams, CompleteResult, Completion
from pydantic import Field

from ..core.prompts import COMMON_LANGUAGES, STYLES, render_system_prompt
from ..errors import McpOllamaError, SessionNotFound
from ..store import validate_session_id
from .errors import protocol_error
from .principal import principal
from .state import AppState, app_state


def register(server: MCPServer[AppState]) -> None:
    @server.prompt(title="System prompt")
    def system_prompt(
        ctx: Context[AppState, Any],
        language: Annotated[
            str | None, Field(description="Always answer in this language (e.g. 'French').")
        ] = None,
        style: Annotated[str | None, Field(description=f"Answer style: one of {', '.join(STYLES)}.")] = None,
    ) -> str:
        """The system prompt chat sends to the local model; with no arguments, exactly the text sent."""
        try:
            return render_system_prompt(app_state(ctx).settings.system_prompt, language=language, style=style)
        except ValueError as exc:  # an unknown style: the caller's argument, told as such
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None

    @server.prompt(title="Continue a local chat session")
    def continue_session(
        ctx: Context[AppState, Any],
        session_id: Annotated[str, Field(description="The stored session to bring into this conversation.")],
    ) -> list[dict[str, Any]]:
        """A stored local conversation as prompt messages, to continue it here."""
        store = app_state(ctx).store
        who = principal(ctx)
        try:
            sid = validate_session_id(session_id)
            if store.get_session(sid, principal=who) is None:
                raise SessionNotFound(sid)
        except McpOllamaError as exc:
            raise protocol_error(ctx.request_context, exc) from None
        messages = store.messages(sid, principal=who)
        return [{"role": m.role, "content": {"type": "text", "text": m.content}} for m in messages]


def _filter(candidates: list[str] | tuple[str, ...], prefix: str) -> Completion:
    wanted = prefix.casefold()
    matches = [c for c in candidates if c.casefold().startswith(wanted)]
    return Completion(values=matches[:100], total=len(matches), has_more=len(matches) > 100)


async def complete(ctx: ServerRequestContext[AppState], params: CompleteRequestParams) -> CompleteResult:
    """Session ids, model names, styles and languages, wherever an argument of that name appears."""
    state = app_state(ctx)
    argument = params.argument
    completion = Completion(values=[])
    if argument.name == "session_id":
        ids = await anyio.to_thread.run_sync(
            partial(state.store.session_ids, argument.value, limit=101, principal=principal(ctx))
        )
        completion = Completion(values=ids[:100], has_more=len(ids) > 100)
    elif argument.name == "model":
        completion = _filter(await state.model_names(), argument.value)
    elif argument.name == "style":
        completion = _filter(STYLES, argument.value)
    elif argument.name == "language":
        completion = _filter(COMMON_LANGUAGES, argument.value)
    return CompleteResult(completion=completion)
