"""``chat`` as an MCP task: who asks (requesters) and how a task's chat starts.

The records live in ``taskbook`` (one ``TaskBook`` per server, in ``AppState``);
``tasks_legacy`` speaks 2025-11-25 core tasks over it, ``tasks_modern`` the 2026-07-28
``io.modelcontextprotocol/tasks`` extension.

A task is visible only to its requester, and asking for someone else's gets exactly the
error an unknown id gets. The requester is, in the handshake era, the connection (the
``initialize`` handshake's, in this process); in the 2026-07-28 era, which has no
connection, the transport's pipe where there is one (stdio: the process's stdin/stdout
pair, for as long as it lasts), else the ``clientInfo`` name and version of the request
envelope. The last is no authorization context: over a transport without a pipe, any
client naming itself the same sees the same tasks, so task ids are random 128-bit values
and lifetimes are capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp_types import CallToolResult

from ..core.job import Job
from ..core.pulls import PullJob
from ..errors import McpOllamaError
from . import chat_tools, model_tools, sdk
from .arguments import argument_problem
from .errors import tool_error
from .principal import principal
from .request import is_modern
from .state import AppState, app_state
from .task_records import ChatTask
from .task_terms import (
    DEFAULT_TTL_MS,
    POLL_INTERVAL_MS,
    TASK_TOOLS,
    Requesters,
    granted_ttl,
    iso,
    result_json,
)
from .taskbook import Progress, TaskBook

__all__ = [
    "DEFAULT_TTL_MS",
    "POLL_INTERVAL_MS",
    "TASK_TOOLS",
    "ChatTask",
    "Progress",
    "Requesters",
    "chat_job",
    "final_result",
    "granted_ttl",
    "iso",
    "requester_of",
    "result_json",
    "task_book",
    "tool_job",
]

# ---------------------------------------------------------------------------- requesters


def requester_of(ctx: ServerRequestContext[Any, Any]) -> str:
    """Who is asking, as task records name them (see the module docstring): always within a principal."""
    return f"{principal(ctx)}|{_requester(ctx)}"


def _requester(ctx: ServerRequestContext[Any, Any]) -> str:
    state = app_state(ctx)
    connection = sdk.connection(ctx)
    if not is_modern(ctx):
        return state.requesters.name(connection, f"2025:{state.jobs.owner}:conn")
    if connection.has_standalone_channel:  # a duplex pipe (stdio): one object per pipe
        return state.requesters.name(connection.outbound, f"2026:{state.jobs.owner}:pipe")
    params = connection.client_params
    info = params.client_info if params is not None else None
    return f"2026:client:{info.name}/{info.version}" if info is not None else "2026:anonymous"


# ---------------------------------------------------------------------------- starting chat


async def chat_job(state: AppState, arguments: Mapping[str, Any], principal: str) -> Job | CallToolResult:
    """Start ``chat`` with ``arguments`` as a job, or the ``isError`` result plain ``chat`` would give."""
    tool = state.chat_tool
    problem = argument_problem(tool, dict(arguments))
    if problem is not None:  # worded as a plain call's ArgumentMiddleware words it
        return tool_error(Exception(problem))
    kwargs = tool.fn_metadata.validate_arguments(dict(arguments))
    kwargs.pop("ctx", None)
    try:
        return await chat_tools.start_chat(
            state,
            kwargs.pop("message"),
            **{**kwargs, "images": kwargs.get("images") or (), "principal": principal},
        )
    except McpOllamaError as exc:
        return tool_error(exc)


async def tool_job(
    state: AppState, name: str, arguments: Mapping[str, Any], principal: str
) -> Job | CallToolResult:
    """Start the job of task-capable tool ``name`` (``TASK_TOOLS``): a pull for ``pull_model``,
    else a ``chat`` turn; or the ``isError`` result the plain call would give."""
    if name == "pull_model":
        return await model_tools.pull_task_job(state, arguments, principal)
    return await chat_job(state, arguments, principal)


def final_result(job: Job) -> CallToolResult:
    """What the plain call answers for a job once it has ended: ``pull_model``'s or ``chat``'s."""
    if isinstance(job, PullJob):
        return model_tools.finished_pull(job)
    return chat_tools.finished_result(job)


def task_book(ctx: ServerRequestContext[Any, Any]) -> TaskBook:
    """The task book of this server (made in its lifespan)."""
    return app_state(ctx).tasks
