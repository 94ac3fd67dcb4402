"""The MCP face of mcp-ollama: ``build_server(settings)`` and ``serve(settings)``.

The tools (declared in ``chat_tools``, ``model_list``, ``session_tools`` and ``model_tools``),
session resources, prompts and completions are registered here, with the middleware that turns
what the SDK would get wrong into what the spec asks. The HTTP client and the session store are
opened in the server's lifespan and reach handlers through the request context.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import MCPServer
from mcp_types import (
    CompleteRequestParams,
    EmptyResult,
    SetLevelRequestParams,
)

from .. import __version__
from ..backend.connect import load_model, open_pool
from ..backend.pool import OllamaPool
from ..config import Settings
from ..core.chat import ChatService
from ..core.job import Job
from ..core.jobs import Jobs
from ..errors import McpOllamaError, StoreError
from ..store import Change, open_store, unavailable_store
from ..transports.stdio import stdio_transport
from . import chat_tools, model_list, model_tools, resources, sdk, session_tools
from . import prompts as prompt_handlers
from .arguments import ArgumentMiddleware
from .bus import PrincipalBus
from .compat import ErrorCodeMiddleware, SpecMiddleware, TaskCapabilityMiddleware
from .patience import Patience
from .peers import Peers
from .principal import principal
from .replicas import relay_changes, tell
from .sdk import lowlevel_server, tool_manager
from .state import (
    AppState,
    session_uri,
    tool_annotations,
)
from .taskbook import TaskBook
from .tasks import TASK_TOOLS, final_result
from .tasks_legacy import LegacyTaskCalls
from .tasks_modern import ChatTasks

logger = logging.getLogger(__name__)


INSTRUCTIONS = (
    "Chat with a local model served by Ollama. Call `chat` with a message; pass the returned "
    "session_id on the next call to continue the same conversation (its history is kept on disk). "
    "Stored conversations are resources at chat://sessions/{session_id}."
)


# ---------------------------------------------------------------------------- state


# ---------------------------------------------------------------------------- server


def build_server(settings: Settings, *, first_answer: anyio.Event | None = None) -> MCPServer[AppState]:
    """An ``MCPServer`` wired to Ollama and the session store named in ``settings``.

    ``first_answer``: set once the first answer (``initialize``, for a host) is out; stdio passes one.
    What that answer does not need waits for it: the tool definitions (about 25 ms: built then,
    while the host reads the answer, or by the first request that needs them, if sooner), then
    the model's preload (its HTTP client imports httpcore, about 18 ms; a model takes seconds to
    load, so the wait costs it nothing). Without one, the definitions are built here.
    """
    bus = PrincipalBus(settings.max_streams_per_user)
    peers = Peers(bus, principal)
    patience = Patience()

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        try:
            store = open_store(settings)
        except StoreError as exc:
            # Serve anyway: what needs no store works, and what needs it says why it cannot.
            logger.error("%s", exc)
            store = unavailable_store(settings, exc)
        try:
            async with open_pool(settings) as pool:
                chat = ChatService(settings, pool, store)

                async def announce(job: Job) -> None:
                    """A stored turn changes its session resource (and the list, for a new session)."""
                    new = job.outcome is not None and job.outcome.new_session
                    await tell(peers, store, Change(job.plan.principal, session_uri(job.session_id), new))

                async with Jobs(
                    chat,
                    store,
                    probe=pool.is_loaded,
                    on_finished=announce,
                    heartbeat_interval=settings.heartbeat_interval,
                ) as jobs:
                    if first_answer is not None:
                        jobs.spawn(lambda: _build_tools_after(first_answer, tools))
                    if settings.preload:
                        jobs.spawn(lambda: preload(pool, settings, after=first_answer))
                    tasks = TaskBook(
                        store,
                        jobs,
                        final_result=final_result,
                        progress_interval=settings.progress_interval,
                        cancel_grace=chat_tools.CANCEL_GRACE_SECONDS,
                    )
                    jobs.spawn(tasks.purge_forever)
                    jobs.spawn(lambda: relay_changes(peers, store, jobs, tasks))  # other replicas' changes
                    yield AppState(settings, pool, store, chat, jobs, peers, tasks, tools, patience=patience)
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
    tools = sdk.defer_tools(server, lambda: _register_tools(server, peers))
    lowlevel = lowlevel_server(server)
    lowlevel.middleware.append(ErrorCodeMiddleware())  # outermost of ours: no error has code 0
    lowlevel.middleware.append(
        SpecMiddleware(lambda name: tool_manager(server).get_tool(name) is not None, peers)
    )
    lowlevel.middleware.append(ArgumentMiddleware(tool_manager(server).get_tool))
    lowlevel.middleware.append(patience)  # notes why hosts cancel: a timeout is not a stop
    # tasks, 2025-11-25: advertised, and task-augmented tools/call answered (after SpecMiddleware's
    # unknown-tool check)
    lowlevel.middleware.extend([TaskCapabilityMiddleware(TASK_TOOLS), LegacyTaskCalls()])

    if first_answer is None:
        tools.build()
    prompt_handlers.register(server)

    resources.register(lowlevel)

    async def set_level(ctx: ServerRequestContext[AppState], params: SetLevelRequestParams) -> EmptyResult:
        peers.set_log_level(ctx, params.level)
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("completion/complete", CompleteRequestParams, prompt_handlers.complete)
    return server


def _register_tools(server: MCPServer[AppState], peers: Peers) -> None:
    """Every tool: built once per process (``sdk.add_tool``), when the server first needs them."""
    sdk.add_tool(
        server,
        chat_tools.chat,
        title="Chat with a local model",
        annotations=tool_annotations(
            "Chat with a local model", read_only=False, destructive=False, idempotent=False
        ),
    )
    sdk.add_tool(
        server,
        chat_tools.chat_result,
        title="Get a chat answer still being written",
        annotations=tool_annotations(
            "Get a chat answer still being written", read_only=True, idempotent=False
        ),
    )
    sdk.add_tool(
        server,
        chat_tools.cancel_chat,
        title="Stop an answer being written",
        annotations=tool_annotations(
            "Stop an answer being written", read_only=False, destructive=True, idempotent=True
        ),
    )

    model_list.register(server)
    session_tools.register(server, peers)
    model_tools.register(server)  # pull_model, running_models, unload_model, embed
    for tool in tool_manager(server).list_tools():
        # The SDK takes a docstring as it is, continuation lines indented; hosts show it verbatim.
        tool.description = inspect.cleandoc(tool.description)


# ---------------------------------------------------------------------------- running


async def _build_tools_after(event: anyio.Event, tools: sdk.DeferredTools) -> None:
    """Build the tool definitions once ``event`` is set, unless a request already did. A failure
    (a bug, not an input) is logged here and raised again to each request that needs the tools."""
    await event.wait()
    try:
        tools.build()
    except Exception:
        logger.exception("could not build the tool definitions")


async def preload(pool: OllamaPool, settings: Settings, *, after: anyio.Event | None = None) -> None:
    """Ask Ollama to load the default model now (or once ``after`` is set), as chats will use it;
    quietly skipped if it is down."""
    if after is not None:
        await after.wait()
    try:
        catalog = await pool.catalog_for(settings.model)  # the server a chat on it would go to
        seconds = await load_model(await pool.catalog_client(settings.model), settings, catalog)
    except McpOllamaError as exc:
        logger.info("did not preload %s: %s", settings.model, exc)
        return
    logger.info("preloaded %s in %.1f s", settings.model, seconds)


async def serve(settings: Settings) -> None:
    """Serve MCP on stdio until stdin closes or SIGTERM/SIGINT arrives; always ends cleanly."""
    answered = anyio.Event()
    server = build_server(settings, first_answer=answered)
    settle_heap()
    lowlevel = lowlevel_server(server)
    options = lowlevel.create_initialization_options(NotificationOptions(resources_changed=True))
    transport = stdio_transport(first_written=answered)
    async with transport as (read_stream, write_stream), anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signals, tg.cancel_scope.cancel)
        await lowlevel.run(read_stream, write_stream, options)
        tg.cancel_scope.cancel()


def settle_heap() -> None:
    """Exempt what start-up built (modules, the SDK's and our models, tool definitions: about 150,000
    objects) from the garbage collector's full passes, each of which otherwise stops every call for
    about 50 ms here: the slowest calls in a run were those. ``gc.freeze``, as servers do after
    start-up; for the processes that serve, not for a test that builds many servers.

    The serving commands pause the collector from the SDK's import until here (``collector_paused``):
    building those objects set off passes over a growing heap that found almost nothing (about
    3,000 objects, 0.5 MB, now kept for good), about 70 ms of a 570 ms start. Resumed here."""
    gc.freeze()
    gc.enable()


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
