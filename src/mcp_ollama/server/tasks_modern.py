"""The 2026-07-28 ``io.modelcontextprotocol/tasks`` extension, and ``ChatTasks``, which serves both eras.

``ChatTasks`` is an ``mcp.server.extension.Extension``: it advertises the extension in
``server/discover`` (``capabilities.extensions["io.modelcontextprotocol/tasks"] = {}``),
binds ``tasks/get`` and ``tasks/cancel`` for both eras, ``tasks/result`` and ``tasks/list``
for 2025-11-25 and ``tasks/update`` for 2026-07-28, and intercepts ``tools/call``.

2026-07-28 requests must declare the extension in their envelope's client capabilities:
``tasks/*`` without it is -32021, and such a client never gets a task. The result of a
completed task is inline in ``tasks/get`` (an ``isError`` result included: in this era that
is ``completed``); ``failed`` carries a JSON-RPC error and is used only for a server that
stopped mid-answer. ``chat`` never asks for input, so ``tasks/update`` acknowledges and
ignores what it is sent. No status notifications: they may travel only on
``subscriptions/listen`` streams, and the SDK's listen handler neither accepts task ids
nor carries events other than its four change kinds; requesters poll (the official one
always does), helped by ``pollIntervalMs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolRequestParams,
    CallToolResult,
    PaginatedRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from ..core.waiting import follow
from . import tasks_legacy
from .errors import public_text
from .principal import principal
from .request import is_modern
from .state import app_state
from .tasks import (
    DEFAULT_TTL_MS,
    POLL_INTERVAL_MS,
    TASK_TOOLS,
    ChatTask,
    final_result,
    iso,
    requester_of,
    task_book,
    tool_job,
)
from .tasks_legacy import TaskIdParams

EXTENSION = "io.modelcontextprotocol/tasks"
DIRECT_ANSWER_SECONDS = 1.0
"""How long a 2026-07-28 ``chat`` waits for its answer before it becomes a task (see ``ChatTasks``)."""

_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
_TASK_ERAS = frozenset({tasks_legacy.TASKS_VERSION, *MODERN_PROTOCOL_VERSIONS})


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(default_factory=dict)


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client capabilities declare the tasks extension."""
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and EXTENSION in (capabilities.extensions or {})


def modern_view(task: ChatTask) -> dict[str, Any]:
    """The 2026-07-28 ``DetailedTask``: the result inline once completed."""
    view: dict[str, Any] = {
        "taskId": task.id,
        "status": "working",
        "createdAt": iso(task.created_at),
        "lastUpdatedAt": iso(task.last_updated),
        "ttlMs": task.ttl_ms,
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if task.message:
        view["statusMessage"] = task.message
    if task.status == "cancelled":
        view["status"] = "cancelled"
    elif task.status in ("complete", "failed") and task.result is not None:
        view.update(status="completed", result={**task.result, "resultType": "complete"})
    elif not task.running:  # stopped mid-answer: the one JSON-RPC-level failure
        message = public_text(task.detail or "the server stopped before the answer was complete")
        view.update(status="failed", error={"code": INTERNAL_ERROR, "message": message})
    return view


def _require_extension(ctx: ServerRequestContext[Any, Any]) -> None:
    if not declares_tasks(ctx):
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="Missing required client capability",
            data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
        )


async def get_task(ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
    if not is_modern(ctx):
        return await tasks_legacy.get_task(ctx, params)
    _require_extension(ctx)
    return modern_view(await task_book(ctx).find(requester_of(ctx), params.task_id))


async def cancel_task(ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
    """2026-07-28: an empty acknowledgement, also for a task that has ended."""
    if not is_modern(ctx):
        return await tasks_legacy.cancel_task(ctx, params)
    _require_extension(ctx)
    book = task_book(ctx)
    await book.cancel(await book.find(requester_of(ctx), params.task_id), "cancelled with tasks/cancel")
    return {}


async def update_task(ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
    """``chat`` never waits for input: every response is for a key not outstanding, so ignored."""
    _require_extension(ctx)
    await task_book(ctx).find(requester_of(ctx), params.task_id)
    return {}


class ChatTasks(Extension):
    """``chat`` as a task in both eras (the methods, and the 2026-07-28 ``tools/call`` decision).

    A 2026-07-28 client that declares the extension gets a task only when the answer is not
    ready within ``DIRECT_ANSWER_SECONDS``. The spec lets the server answer any eligible
    request with a task, and the client must take either shape; a short answer, an input
    error or a warm model's reply is then one round trip instead of three (call, poll,
    result), and its progress rides the call as for plain ``chat``. A long generation gives
    back control after that second, as a handle; from then on it is polled, without
    progress (the spec allows none on tasks), and ``tasks/cancel`` stops the model. A
    cancelled call stops the model while the call still waits, as plain ``chat`` does.
    """

    identifier = EXTENSION

    def methods(self) -> Sequence[MethodBinding]:
        handshake = frozenset({tasks_legacy.TASKS_VERSION})
        return [
            MethodBinding("tasks/get", TaskIdParams, get_task, _TASK_ERAS),
            MethodBinding("tasks/cancel", TaskIdParams, cancel_task, _TASK_ERAS),
            MethodBinding("tasks/result", TaskIdParams, tasks_legacy.task_result, handshake),
            MethodBinding("tasks/list", PaginatedRequestParams, tasks_legacy.list_tasks, handshake),
            MethodBinding("tasks/update", UpdateTaskParams, update_task, _MODERN),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name not in TASK_TOOLS or not is_modern(ctx) or not declares_tasks(ctx):
            return await call_next(ctx)
        state = app_state(ctx)
        if task_book(ctx).running_for(principal(ctx)) >= state.settings.max_tasks_per_user:
            return await call_next(ctx)  # a plain call: it answers within the deadline or says how to wait
        return await answer_or_task(ctx, params)


async def answer_or_task(ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> HandlerResult:
    """The answer if it comes within ``DIRECT_ANSWER_SECONDS``, else a task handle."""
    state = app_state(ctx)
    started = await tool_job(state, params.name, params.arguments or {}, principal(ctx))
    if isinstance(started, CallToolResult):
        return started
    job = started

    async def report(value: float, message: str) -> None:
        await ctx.session.report_progress(value, None, message)  # sent only with a progressToken

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow, job, report, state.settings.progress_interval)
            finished = await job.wait(DIRECT_ANSWER_SECONDS)
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        job.cancel("the request was cancelled")
        raise
    if finished:
        return final_result(job)
    task = task_book(ctx).adopt(job, requester_of(ctx), DEFAULT_TTL_MS, notify=None, progress=None)
    return {"resultType": "task", **modern_view(task)}
