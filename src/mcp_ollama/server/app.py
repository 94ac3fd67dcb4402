"""The MCP face of mcp-ollama: ``build_server(settings)`` and ``serve(settings)``.

Tools (``chat``, ``list_models``, ``delete_session``, ``clear_session``), session resources,
prompts and completions are declared here, and this is the one boundary where domain errors
become ``isError`` tool results or JSON-RPC errors. The HTTP client and the session store are
opened in the server's lifespan and reach handlers through the request context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import Field

from .. import __version__
from ..backend import OllamaClient
from ..chat import ChatService, load_model, open_client
from ..core.jobs import Job, Jobs
from ..errors import BackendError, McpOllamaError, ModelNotFound, SessionNotFound, StoreError
from ..prompts import COMMON_LANGUAGES, STYLES, render_system_prompt
from ..protocol import ErrorCodeMiddleware, Peers, SpecMiddleware, TaskCapabilityMiddleware, not_found_code
from ..results import ModelList, SessionChange, human_size, model_summary
from ..settings import Settings
from ..store import ChatStore, SessionInfo, validate_session_id
from ..transcripts import transcript_json, transcript_markdown
from ..transport import stdio_transport
from . import chat_tools
from .state import (
    SESSION_URI_PREFIX,
    SESSION_URI_TEMPLATE,
    AppState,
    app_state,
    error_result,
    session_uri,
    structured_result,
    tool_annotations,
)
from .tasks import TASK_TOOLS
from .tasks_legacy import LegacyTaskCalls
from .tasks_modern import ChatTasks

logger = logging.getLogger(__name__)

MODEL_URI_PREFIX = "ollama://models/"
MODEL_URI_TEMPLATE = MODEL_URI_PREFIX + "{model}"
RESOURCES_PAGE_SIZE = 100

SessionIdArg = Annotated[str, Field(description="The session_id of the conversation.")]

INSTRUCTIONS = (
    "Chat with a local model served by Ollama. Call `chat` with a message; pass the returned "
    "session_id on the next call to continue the same conversation (its history is kept on disk). "
    "Stored conversations are resources at chat://sessions/{session_id}."
)


# ---------------------------------------------------------------------------- state


def _not_found(ctx: ServerRequestContext[Any, Any], uri: str) -> MCPError:
    """The protocol error for a resource that does not exist, with the era's code."""
    return MCPError(code=not_found_code(ctx), message="Resource not found", data={"uri": uri[:200]})


def _session_resource(info: SessionInfo) -> Resource:
    last_active = info.updated_at.isoformat(timespec="seconds")
    return Resource(
        uri=session_uri(info.id),
        name=f"session-{info.id}",
        title=info.title or f"Session {info.id}",
        description=f"Chat with {info.model}: {info.turn_count} turns, last active {last_active}.",
        mime_type="application/json",
    )


# ---------------------------------------------------------------------------- server


def build_server(settings: Settings) -> MCPServer[AppState]:
    """An ``MCPServer`` wired to Ollama and the session store named in ``settings``."""
    bus = InMemorySubscriptionBus()
    peers = Peers(bus)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        try:
            store = ChatStore.open(settings.db_path)
        except StoreError as exc:
            # Serve anyway: what needs no store works, and what needs it says why it cannot.
            logger.error("%s", exc)
            store = ChatStore.unavailable(settings.db_path, exc)
        try:
            async with open_client(settings) as client:
                chat = ChatService(settings, client, store)

                async def announce(job: Job) -> None:
                    """A stored turn changes its session resource (and the list, for a new session)."""
                    if job.outcome is not None and job.outcome.new_session:
                        await peers.resources_changed()
                    await peers.resource_updated(session_uri(job.session_id))

                async def is_loaded(model: str) -> bool:
                    return model in await client.loaded_models()

                async with Jobs(
                    chat,
                    store,
                    probe=is_loaded,
                    on_finished=announce,
                    heartbeat_interval=settings.heartbeat_interval,
                ) as jobs:
                    if settings.preload:
                        jobs.spawn(lambda: preload(client, settings))
                    yield AppState(settings, client, store, chat, jobs, peers)
        finally:
            store.close()

    server: MCPServer[AppState] = MCPServer(
        "mcp-ollama",
        title="Ollama (local models)",
        description="Chat with local Ollama models; conversations persist as resources.",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        subscriptions=bus,
        log_level=settings.log_level,  # type: ignore[arg-type]
        extensions=[ChatTasks()],  # tasks: both eras' methods, 2026-07-28 tools/call
    )
    lowlevel = server._lowlevel_server
    lowlevel.middleware.append(ErrorCodeMiddleware())  # outermost of ours: no error has code 0
    lowlevel.middleware.append(
        SpecMiddleware(lambda name: server._tool_manager.get_tool(name) is not None, peers)
    )
    # tasks, 2025-11-25: advertised, and task-augmented tools/call answered (after SpecMiddleware's
    # unknown-tool check)
    lowlevel.middleware.extend([TaskCapabilityMiddleware(TASK_TOOLS), LegacyTaskCalls()])

    _register_tools(server, peers)
    _register_prompts(server)

    # ---- resources: paginated sessions, read through one template, subscriptions in both eras

    async def list_resources(
        ctx: ServerRequestContext[AppState], params: PaginatedRequestParams
    ) -> ListResourcesResult:
        try:
            sessions, cursor = await anyio.to_thread.run_sync(
                app_state(ctx).store.list_sessions, RESOURCES_PAGE_SIZE, params.cursor
            )
        except ValueError:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor") from None
        return ListResourcesResult(resources=[_session_resource(s) for s in sessions], next_cursor=cursor)

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
                info = await anyio.to_thread.run_sync(app_state(ctx).store.get_session, sid)
            except McpOllamaError:
                info = None
        if info is None:
            raise _not_found(ctx, uri)
        return info

    async def read_resource(
        ctx: ServerRequestContext[AppState], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        if params.uri.startswith(MODEL_URI_PREFIX):
            return await read_model(ctx, params.uri)
        info = await session_for(ctx, params.uri)
        store = app_state(ctx).store

        def render() -> ReadResourceResult:  # a long session is read and rendered off the event loop
            messages = store.messages(info.id)
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
            raise _not_found(ctx, uri)
        try:
            show = await app_state(ctx).client.show(name)
        except ModelNotFound:
            raise _not_found(ctx, uri) from None
        except BackendError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=str(exc), data={"uri": uri}) from None
        text = json.dumps({"model": name, **show.model_dump(mode="json")}, indent=2)
        return ReadResourceResult(
            contents=[TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    async def subscribe(ctx: ServerRequestContext[AppState], params: SubscribeRequestParams) -> EmptyResult:
        await session_for(ctx, params.uri)
        peers.subscribe(ctx, params.uri)
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[AppState], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        peers.unsubscribe(ctx, params.uri)
        return EmptyResult()

    async def set_level(ctx: ServerRequestContext[AppState], params: SetLevelRequestParams) -> EmptyResult:
        peers.set_log_level(ctx, params.level)
        return EmptyResult()

    lowlevel.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    lowlevel.add_request_handler("resources/templates/list", PaginatedRequestParams, list_templates)
    lowlevel.add_request_handler("resources/read", ReadResourceRequestParams, read_resource)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("completion/complete", CompleteRequestParams, _complete)
    return server


def _register_tools(server: MCPServer[AppState], peers: Peers) -> None:
    server.add_tool(
        chat_tools.chat,
        title="Chat with a local model",
        annotations=tool_annotations(
            "Chat with a local model", read_only=False, destructive=False, idempotent=False
        ),
    )
    server.add_tool(
        chat_tools.chat_result,
        title="Get a chat answer still being written",
        annotations=tool_annotations(
            "Get a chat answer still being written", read_only=True, idempotent=False
        ),
    )
    server.add_tool(
        chat_tools.cancel_chat,
        title="Stop an answer being written",
        annotations=tool_annotations(
            "Stop an answer being written", read_only=False, destructive=True, idempotent=True
        ),
    )

    @server.tool(
        title="List local models",
        annotations=tool_annotations("List local models", read_only=True, idempotent=True),
    )
    async def list_models(ctx: Context[AppState, Any]) -> Annotated[CallToolResult, ModelList]:
        """List the models pulled into the local Ollama, with size, family, parameter count and quantization.

        Use a name from this list as the `model` argument of chat.
        """
        state = app_state(ctx)
        try:
            models = await state.client.list_models()
        except McpOllamaError as exc:
            return error_result(exc)
        result = ModelList(models=[model_summary(m) for m in models], default_model=state.settings.model)
        lines = [f"Default model: {result.default_model}"] + [
            f"- {m.name} ({m.parameter_size or '?'} params, {m.quantization or '?'}, "
            f"{human_size(m.size_bytes)})"
            for m in result.models
        ]
        if not result.models:
            lines.append(f"No models are pulled. Pull one with `ollama pull {state.settings.model}`.")
        return structured_result("\n".join(lines), result)

    @server.tool(
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

    @server.tool(
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

    def change(sid: str) -> SessionInfo:
        info = store.get_session(sid)
        changed = info is not None and (store.delete_session(sid) if delete else store.clear_session(sid))
        if info is None or not changed:
            raise SessionNotFound(sid)
        return info

    try:
        sid = validate_session_id(session_id)
        info = await anyio.to_thread.run_sync(change, sid)
    except McpOllamaError as exc:
        return error_result(exc)
    if delete:
        await peers.resources_changed()
    await peers.resource_updated(session_uri(sid))
    result = SessionChange(session_id=sid, deleted=delete, cleared_messages=info.message_count)
    verb = "Deleted" if delete else "Cleared"
    return structured_result(f"{verb} session {sid} ({info.message_count} messages).", result)


def _register_prompts(server: MCPServer[AppState]) -> None:
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
        try:
            sid = validate_session_id(session_id)
        except McpOllamaError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
        if store.get_session(sid) is None:
            raise MCPError(code=INVALID_PARAMS, message=str(SessionNotFound(sid)))
        return [{"role": m.role, "content": {"type": "text", "text": m.content}} for m in store.messages(sid)]


def _filter(candidates: list[str] | tuple[str, ...], prefix: str) -> Completion:
    wanted = prefix.casefold()
    matches = [c for c in candidates if c.casefold().startswith(wanted)]
    return Completion(values=matches[:100], total=len(matches), has_more=len(matches) > 100)


async def _complete(ctx: ServerRequestContext[AppState], params: CompleteRequestParams) -> CompleteResult:
    """Session ids, model names, styles and languages, wherever an argument of that name appears."""
    state = app_state(ctx)
    argument = params.argument
    completion = Completion(values=[])
    if argument.name == "session_id":
        ids = await anyio.to_thread.run_sync(partial(state.store.session_ids, argument.value, limit=101))
        completion = Completion(values=ids[:100], has_more=len(ids) > 100)
    elif argument.name == "model":
        completion = _filter(await state.model_names(), argument.value)
    elif argument.name == "style":
        completion = _filter(STYLES, argument.value)
    elif argument.name == "language":
        completion = _filter(COMMON_LANGUAGES, argument.value)
    return CompleteResult(completion=completion)


# ---------------------------------------------------------------------------- running


async def preload(client: OllamaClient, settings: Settings) -> None:
    """Ask Ollama to load the default model now, as chats will use it; quietly skipped if it is down."""
    try:
        seconds = await load_model(client, settings)
    except McpOllamaError as exc:
        logger.info("did not preload %s: %s", settings.model, exc)
        return
    logger.info("preloaded %s in %.1f s", settings.model, seconds)


async def serve(settings: Settings) -> None:
    """Serve MCP on stdio until stdin closes or SIGTERM/SIGINT arrives; always ends cleanly."""
    server = build_server(settings)
    lowlevel = server._lowlevel_server
    options = lowlevel.create_initialization_options(NotificationOptions(resources_changed=True))
    async with stdio_transport() as (read_stream, write_stream), anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signals, tg.cancel_scope.cancel)
        await lowlevel.run(read_stream, write_stream, options)
        tg.cancel_scope.cancel()


async def _stop_on_signals(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM or SIGINT (and SIGBREAK on Windows), with whatever the platform offers.

    Where the event loop has no signal handlers (asyncio on Windows raises
    ``NotImplementedError``), fall back to ``signal.signal`` for SIGINT and SIGBREAK; the
    host closing stdin ends the server on every platform anyway.
    """
    try:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("received %s, shutting down", signal.Signals(signum).name)
                stop()
                return
    except NotImplementedError:
        logger.debug("the event loop has no signal handlers; using signal.signal")
    _install_plain_signal_handlers(stop)
    await anyio.sleep_forever()


def _install_plain_signal_handlers(stop: Callable[[], None]) -> None:
    """``signal.signal`` handlers that hand ``stop`` to the event loop thread-safely."""
    loop = asyncio.get_running_loop()

    def handle(signum: int, frame: object) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        loop.call_soon_threadsafe(stop)

    for name in ("SIGINT", "SIGBREAK"):  # SIGBREAK: Ctrl-Break, Windows only
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            signal.signal(signum, handle)
        except (ValueError, OSError):  # not the main thread, or not allowed here: stdin EOF still ends us
            logger.debug("cannot handle %s here", name, exc_info=True)
