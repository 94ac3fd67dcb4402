"""Pulls as the tools see them: start one (``pull_model`` and its task), wait for it up to the
answer deadline relaying its progress in bytes with the total, and say where it stands.

``pull_model`` waits like ``chat``: done in time, the result is the finished pull; otherwise it
is where the pull stands (``status: "pulling"``) and the pull carries on, ``pull_result``
waits again, ``cancel_pull`` stops it. A cancelled ``pull_model`` request stops the download
it started (Ollama keeps what it has, and a later pull resumes from there).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from ..backend.admin import forget, pick_servers
from ..core.pull_progress import check_model_name
from ..core.pulls import PullJob, relay
from ..store import LOCAL
from .errors import tool_error
from .model_results import failed_text, pull_state, pull_text
from .request import wants_progress
from .state import AppState, app_state, structured_result

CANCEL_GRACE_SECONDS = 10.0
"""How long cancel_pull waits for Ollama's stream to close before it answers."""


async def start_pull(
    state: AppState,
    model: str,
    *,
    server: str | None = None,
    insecure: bool = False,
    principal: str = LOCAL,
    join: bool = True,
) -> tuple[PullJob, bool]:
    """Start pulling ``model`` onto the servers ``server`` names (all when None): the job, and
    whether this call started it (with ``join``, a pull of the same model onto the same servers
    already running is returned instead)."""
    name = check_model_name(model)
    sources = pick_servers(state.pool, server)

    async def pulled(job: PullJob) -> None:
        # Listings and completions name the new model at once.
        forget(state.pool, job.model)
        state.forget_model_names()

    return state.pulls.start(
        name,
        sources,
        spawn=state.jobs.spawn,
        principal=principal,
        insecure=insecure,
        on_pulled=pulled,
        join=join,
    )


async def await_pull(ctx: Context[AppState, Any], job: PullJob, *, owner: bool) -> CallToolResult:
    """Wait for ``job`` up to the answer deadline, relaying its progress, then say where it stands.

    ``owner``: this request started the pull, and its cancellation stops it.
    """
    settings = app_state(ctx).settings
    deadline = settings.answer_deadline or math.inf
    try:
        async with _relaying(ctx, job, settings.progress_interval):
            await job.wait(deadline)
    except anyio.get_cancelled_exc_class():
        if owner:
            job.cancel("the request was cancelled")
        raise
    return pull_answer(job)


def pull_answer(job: PullJob) -> CallToolResult:
    """What ``pull_model`` (or ``pull_result``, or a task's result) answers for ``job`` now."""
    if job.done and job.error is not None:
        return tool_error(Exception(failed_text(job)))
    result = pull_state(job)
    return structured_result(pull_text(result, job), result)


@asynccontextmanager
async def _relaying(ctx: Context[AppState, Any], job: PullJob, interval: float) -> AsyncIterator[None]:
    """Relay the pull's progress while the block runs, if the request asked for progress at all."""
    if not wants_progress(ctx.request_context):
        yield
        return

    async def report(value: float, total: float | None, message: str) -> None:
        await ctx.report_progress(value, total, message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(relay, job, report, interval)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
