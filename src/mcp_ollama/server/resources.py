"""Sessions and models as MCP resources: a paginated list, reads through two templates, subscriptions.

Session resources are ``chat://sessions/{session_id}`` (a JSON document, then the transcript as
Markdown); ``ollama://models/{model}`` reads a pulled model's details (and where it is loaded),
``ollama://running`` what every server holds in memory (``model_resources``). Subscriptions work in
both eras through ``Peers``. Handlers are plain functions of the request context, registered
by ``register`` from one table.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from ..backend_errors import ModelNotFound
from ..core.text import count
from ..core.transcripts import transcript_json, transcript_markdown
from ..errors import BackendError, McpOllamaError
from ..store import SessionInfo, validate_session_id
from .errors import not_found_code, protocol_error
from .model_resources import RUNNING_URI, loaded_on, read_running
from .principal import principal
from .state import SESSION_URI_PREFIX, SESSION_URI_TEMPLATE, AppState, app_state, session_uri

MODEL_URI_PREFIX = "ollama://models/"
MODEL_URI_TEMPLATE = MODEL_URI_PREFIX + "{model}"
RESOURCES_PAGE_SIZE = 100


def not_found(ctx: ServerRequestContext[Any, Any], uri: str) -> MCPError:
    """The protocol error for a resource that does not exist, with the era's code."""
    return MCPError(code=not_found_code(ctx), message="Resource not found", data={"uri": uri[:200]})


def session_resource(info: SessionInfo) -> Resource:
    last_active = info.updated_at.isoformat(timespec="seconds")
    return Resource(
        uri=session_uri(info.id),
        name=f"session-{info.id}",
        title=info.title or f"Session {info.id}",
        description=f"Chat with {info.model}: {count(info.turn_count, 'turn')}, last active {last_active}.",
        mime_type="application/json",
    )


async def list_resources(
    ctx: ServerRequestContext[AppState], params: PaginatedRequestParams
) -> ListResourcesResult:
    try:
        sessions, cursor = await anyio.to_thread.run_sync(
            partial(
                app_state(ctx).store.list_sessions,
                RESOURCES_PAGE_SIZE,
                params.cursor,
                principal=principal(ctx),
            )
        )
    except ValueError:
        raise MCPError(code=INVALID_PARAMS, message="Invalid cursor") from None
    app_state(ctx).peers.listed(ctx)
    return ListResourcesResult(resources=[session_resource(s) for s in sessions], next_cursor=cursor)


async def list_templates(
    ctx: ServerRequestContext[AppState], params: PaginatedRequestParams
) -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(
        resource_templates=[
            ResourceTemplate(
                uri_template=SESSION_URI_TEMPLATE,
                name="chat-session",
                title="Chat session transcript",
                description="A stored chat session: a JSON document, then the transcript as Markdown.",
                mime_type="application/json",
            ),
            ResourceTemplate(
                uri_template=MODEL_URI_TEMPLATE,
                name="ollama-model",
                title="Local model details",
                description="A pulled model's family, size, quantization, context length, capabilities.",
                mime_type="application/json",
            ),
        ]
    )


async def session_for(ctx: ServerRequestContext[AppState], uri: str) -> SessionInfo:
    """The session ``uri`` names, or the era's not-found error (hostile ids included)."""
    info = None
    if uri.startswith(SESSION_URI_PREFIX):
        try:
            sid = validate_session_id(uri[len(SESSION_URI_PREFIX) :])
            read = partial(app_state(ctx).store.get_session, sid, principal=principal(ctx))
            info = await anyio.to_thread.run_sync(read)
        except McpOllamaError:
            info = None
    if info is None:
        raise not_found(ctx, uri)
    return info


async def read_resource(
    ctx: ServerRequestContext[AppState], params: ReadResourceRequestParams
) -> ReadResourceResult:
    if params.uri.startswith(MODEL_URI_PREFIX):
        return await read_model(ctx, params.uri)
    if params.uri == RUNNING_URI:
        return await read_running(ctx, params.uri)
    info = await session_for(ctx, params.uri)
    store = app_state(ctx).store

    def render() -> ReadResourceResult:  # a long session is read and rendered off the event loop
        messages = store.messages(info.id, principal=info.principal)
        return ReadResourceResult(
            contents=[
                TextResourceContents(
                    uri=params.uri, mime_type="application/json", text=transcript_json(info, messages)
                ),
                TextResourceContents(
                    uri=params.uri, mime_type="text/markdown", text=transcript_markdown(info, messages)
                ),
            ]
        )

    return await anyio.to_thread.run_sync(render)


async def read_model(ctx: ServerRequestContext[AppState], uri: str) -> ReadResourceResult:
    name = uri[len(MODEL_URI_PREFIX) :]
    if not name or len(name) > 200:
        raise not_found(ctx, uri)
    pool = app_state(ctx).pool
    try:
        show = await (await pool.catalog_for(name)).show(name)
    except ModelNotFound:
        raise not_found(ctx, uri) from None
    except BackendError as exc:
        raise protocol_error(ctx, exc, uri=uri) from None
    details = {
        "model": name,
        **show.model_dump(mode="json"),
        "num_ctx": app_state(ctx).chat.window(name, show, None),
        "loaded": await loaded_on(app_state(ctx), name),  # where it is in memory now
    }
    text = json.dumps(details, indent=2)
    return ReadResourceResult(
        contents=[TextResourceContents(uri=uri, mime_type="application/json", text=text)]
    )


async def subscribe(ctx: ServerRequestContext[AppState], params: SubscribeRequestParams) -> EmptyResult:
    await session_for(ctx, params.uri)
    app_state(ctx).peers.subscribe(ctx, params.uri)
    return EmptyResult()


async def unsubscribe(ctx: ServerRequestContext[AppState], params: UnsubscribeRequestParams) -> EmptyResult:
    app_state(ctx).peers.unsubscribe(ctx, params.uri)
    return EmptyResult()


def register(lowlevel: Server[AppState]) -> None:
    """The resource methods, on the SDK's low-level server."""
    lowlevel.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    lowlevel.add_request_handler("resources/templates/list", PaginatedRequestParams, list_templates)
    lowlevel.add_request_handler("resources/read", ReadResourceRequestParams, read_resource)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
