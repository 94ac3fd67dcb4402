"""2025-11-25 core tasks: a task-augmented ``tools/call`` of ``chat``, and ``tasks/*``.

``LegacyTaskCalls`` is server middleware, not a ``tools/call`` handler: the SDK validates a
handshake-era ``tools/call`` result as a ``CallToolResult``, so a ``CreateTaskResult`` can only
be answered above it. What the spec asks and what this does:

- ``params.task`` on a tool without ``execution.taskSupport``: -32601. On ``chat``: a
  ``CreateTaskResult`` at once (``ttl`` defaults to ``DEFAULT_TTL_MS``, capped at
  ``MAX_TTL_MS``), the job running in the server's task group. Arguments ``chat`` would refuse
  (an empty message, a bad session id) make a task that fails at once: for a tool, an
  ``isError`` result is a failed task, and ``tasks/result`` gives that result.
- ``tasks/result`` waits for the end, then answers exactly what plain ``chat`` would have,
  with ``_meta["io.modelcontextprotocol/related-task"]``; failed tasks included.
- ``tasks/cancel`` stops the model and answers the cancelled task; -32602 once it has ended.
- ``notifications/tasks/status`` when the task ends, and when its message changes (at most
  every ``STATUS_INTERVAL``); progress keeps flowing on the call's ``progressToken``.
- Task JSON is built as dicts: ``ttl`` is always present (the SDK's models drop a null one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolResult,
    PaginatedRequestParams,
    RequestParams,
)
from pydantic import ConfigDict

from ..errors import LimitReached
from . import sdk
from .errors import public_text
from .principal import principal
from .state import app_state
from .tasks import (
    POLL_INTERVAL_MS,
    TASK_TOOLS,
    ChatTask,
    Progress,
    granted_ttl,
    iso,
    requester_of,
    task_book,
    tool_job,
)

TASKS_VERSION = "2025-11-25"
"""The one handshake-era revision with tasks."""
RELATED_TASK = "io.modelcontextprotocol/related-task"
LIST_PAGE_SIZE = 50

_STATUS = {
    "running": "working",
    "complete": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "interrupted": "failed",
}


class TaskIdParams(RequestParams):
    model_config = ConfigDict(defer_build=True)  # built at the first tasks/* request, not at start

    task_id: str


def legacy_view(task: ChatTask) -> dict[str, Any]:
    """The 2025-11-25 ``Task`` (``ttl`` always present)."""
    view: dict[str, Any] = {
        "taskId": task.id,
        "status": _STATUS[task.status],
        "createdAt": iso(task.created_at),
        "lastUpdatedAt": iso(task.last_updated),
        "ttl": task.ttl_ms,
        "pollInterval": POLL_INTERVAL_MS,
    }
    if task.message:
        view["statusMessage"] = task.message
    return view


class LegacyTaskCalls:
    """Server middleware: answers a task-augmented ``tools/call`` with a ``CreateTaskResult``."""

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        params = ctx.params
        if (
            ctx.request_id is None
            or ctx.method != "tools/call"
            or ctx.protocol_version != TASKS_VERSION
            or not isinstance(params, Mapping)
            or not isinstance(params.get("task"), Mapping)  # absent: a plain call; malformed: the SDK says so
        ):
            return await call_next(ctx)
        name = params.get("name")
        if name not in TASK_TOOLS:
            raise MCPError(code=METHOD_NOT_FOUND, message=f"Tool {name!r} cannot be called as a task")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            raise MCPError(code=INVALID_PARAMS, message="arguments must be an object")
        return await start_task(ctx, arguments, params["task"].get("ttl"), _progress_token(params), name)


async def start_task(
    ctx: ServerRequestContext[Any, Any],
    arguments: Mapping[str, Any],
    ttl: object,
    token: object,
    name: str = "chat",
) -> dict[str, Any]:
    """Create the task for a call of ``name`` (``chat`` or ``pull_model``); its ``CreateTaskResult``."""
    ttl_ms = granted_ttl(ttl)
    state, book, requester = app_state(ctx), task_book(ctx), requester_of(ctx)
    connection = sdk.connection(ctx)

    async def notify(task: ChatTask) -> None:
        await connection.notify("notifications/tasks/status", legacy_view(task))

    progress: Progress | None = None
    if isinstance(token, str | int) and not isinstance(token, bool):

        async def progress(value: float, message: str) -> None:
            params = {"progressToken": token, "progress": value, "message": message}
            await connection.notify("notifications/progress", params)

    who = principal(ctx)
    if book.running_for(who) >= state.settings.max_tasks_per_user:
        raise LimitReached(
            "task",
            "running",
            state.settings.max_tasks_per_user,
            "--max-tasks-per-user",
            "wait for one to end (tasks/result) or cancel one, then try again.",
        )
    started = await tool_job(state, name, arguments, who)
    if isinstance(started, CallToolResult):
        task = book.jobless(requester, ttl_ms, notify)
        created = legacy_view(task)  # a task begins working; it fails right after
        book.fail(task, started)
        return {"task": created}
    task = book.adopt(started, requester, ttl_ms, notify=notify, progress=progress)
    return {"task": legacy_view(task)}


def _progress_token(params: Mapping[str, Any]) -> object:
    meta = params.get("_meta")
    return meta.get("progressToken") if isinstance(meta, Mapping) else None


async def get_task(ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
    return legacy_view(await task_book(ctx).find(requester_of(ctx), params.task_id))


async def task_result(ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
    """Wait for the task to end; then what plain ``chat`` would have answered."""
    book = task_book(ctx)
    task = await book.ended(await book.find(requester_of(ctx), params.task_id))
    if task.result is None:
        raise MCPError(
            code=INTERNAL_ERROR, message=public_text(task.detail or "The task ended without a result")
        )
    meta = {**task.result.get("_meta", {}), RELATED_TASK: {"taskId": task.id}}
    return {**task.result, "_meta": meta}


async def list_tasks(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> dict[str, Any]:
    tasks, cursor = await task_book(ctx).page(requester_of(ctx), LIST_PAGE_SIZE, params.cursor)
    page: dict[str, Any] = {"tasks": [legacy_view(task) for task in tasks]}
    if cursor is not None:
        page["nextCursor"] = cursor
    return page


async def cancel_task(ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
    book = task_book(ctx)
    task = await book.find(requester_of(ctx), params.task_id)
    if not await book.cancel(task, "cancelled with tasks/cancel"):
        status = _STATUS[task.status]
        message = f"Cannot cancel task: already in terminal status {status!r}"
        raise MCPError(code=INVALID_PARAMS, message=message)
    return legacy_view(task)
