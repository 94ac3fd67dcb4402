"""How a ``chat`` or ``chat_result`` request waits for its job, and what a cancel of it means.

It waits up to its answer deadline (the configured one, or sooner for a client seen to give up
earlier: ``patience``), relaying the job's progress, then answers the whole answer or the part
written so far. Cancelled by its host: a cancel naming the host's own timeout leaves the job
running and its answer kept for ``chat_result``; any other cancel of the request that started
the job stops the model at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from ..core.job import Job
from ..core.waiting import follow
from ..errors import McpOllamaError
from .chat_results import answered, complete, finished_result, generating
from .errors import public_text, tool_error
from .request import cancel_check, wants_progress
from .state import AppState, app_state

logger = logging.getLogger(__name__)


async def await_job(ctx: Context[AppState, Any], job: Job, *, owner: bool, started: float) -> CallToolResult:
    """Wait for ``job`` up to the answer deadline, relaying its progress, then describe it.

    ``owner``: this request started the job. While the owner waits, the finished turn is handed
    to it to store: the turn is stored exactly when this request is answered (see ``Handoff``),
    so a user's cancel that races the answer leaves the session unchanged. ``started``: when the
    request arrived (``time.monotonic()``), to learn how long a host that gives up waited.
    """
    state = app_state(ctx)
    request = ctx.request_context
    job.owned = owner or job.owned
    try:
        deadline = await state.patience.deadline(state.store, request, state.settings.answer_deadline)
        async with _relaying_progress(ctx, job, state.settings.progress_interval):
            with anyio.move_on_after(deadline):
                # The owner wakes for the end or its handoff; anyone else (chat_result) for the end.
                while not job.done and not (owner and job.handoff is not None):
                    await (job.decided if owner else job.ended).wait()
    except anyio.get_cancelled_exc_class():
        await _cancelled(state, request, job, owner=owner, waited=time.monotonic() - started)
        raise
    finally:
        if owner and job.handoff is None:
            job.owned = False  # from now on the job stores its own turn
    if owner and job.handoff is not None and not job.handoff.settled.is_set():
        if cancel_check(request)():  # the host cancelled just as the answer completed
            await _cancelled(state, request, job, owner=True, waited=time.monotonic() - started)
            return tool_error(McpOllamaError("The request was cancelled."))  # nobody reads it
        await state.peers.log(request, "info", answered(job))
        outcome = await job.handoff.run(cancel_check(request))
        # Nothing awaits from here to the answer: a cancel cannot slip in between.
        if outcome is None:
            return tool_error(McpOllamaError("The request was cancelled; nothing was stored."))
        return complete(job, outcome)
    if not job.done:
        state.jobs.keep(job)
        return generating(job, new_session=await _new_session(state, job))
    if job.error is not None:
        logger.info("chat failed: %s", job.error)
        await state.peers.log(request, "error", public_text(job.error))
    elif job.outcome is not None:
        await state.peers.log(request, "info", answered(job))
    return finished_result(job)


async def _cancelled(
    state: AppState, request: ServerRequestContext[Any, Any], job: Job, *, owner: bool, waited: float
) -> None:
    """The host cancelled this request: a timeout lets the job go on, anything else stops it (owner)."""
    with anyio.CancelScope(shield=True):
        gave_up = await state.patience.timed_out(request)
        if gave_up:
            sooner = await state.patience.learn(state.store, request, waited)
            logger.info(
                "the client gave up waiting after %.1f s (its timeout); the answer in session %s goes on "
                "and is kept for chat_result%s",
                waited,
                job.session_id,
                f"; its next calls answer after {sooner:.1f} s at most" if sooner is not None else "",
            )
        if not owner:
            return
        if not gave_up:
            if job.handoff is not None:
                job.handoff.decline()
            job.cancel("the request was cancelled")
            return
        job.owned = False  # the job stores its own turn from now on...
        state.jobs.keep(job)  # ...recorded first: the turn's commit closes the record
        if job.handoff is not None and not job.handoff.settled.is_set():
            await job.handoff.run(lambda: False)  # ...or it was already waiting for this request


async def _new_session(state: AppState, job: Job) -> bool:
    """Whether the job's session did not exist when it started (nothing of it is stored yet)."""
    if job.plan.fresh:
        return True
    find = partial(state.store.get_session, job.session_id, principal=job.plan.principal)
    try:
        return await anyio.to_thread.run_sync(find) is None
    except McpOllamaError:  # the store cannot say: the answer tells the rest
        return False


@asynccontextmanager
async def _relaying_progress(ctx: Context[AppState, Any], job: Job, interval: float) -> AsyncIterator[None]:
    """Relay the job's progress while the block runs, if the request asked for progress at all.

    Each message names the session, so a host that gives up waiting still knows where to look.
    """
    if not wants_progress(ctx.request_context):
        yield
        return

    async def report(value: float, message: str) -> None:
        await ctx.report_progress(value, None, f"{message} (session {job.session_id})")

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow, job, report, interval)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
