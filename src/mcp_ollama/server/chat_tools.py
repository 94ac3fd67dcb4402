"""The ``chat``, ``chat_result`` and ``cancel_chat`` tools: chat turns as jobs that outlive requests.

``chat`` starts a job and waits for it up to the answer deadline. Finished in time, the result
is the whole answer (``status: "complete"``); otherwise it is the part written so far
(``status: "generating"``) and the job carries on: ``chat_result`` waits again and returns
the rest, ``cancel_chat`` stops it. A ``notifications/cancelled`` for the ``chat`` request
itself stops the model, as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..backend.models import GenerationOptions, Think
from ..core.images import Image, read_images
from ..core.job import Job, JobState
from ..core.structured import Format
from ..core.text import count
from ..core.turns import TurnOutcome
from ..core.waiting import follow
from ..errors import McpOllamaError, SessionNotFound
from ..store import LOCAL, validate_session_id
from .compat import cancel_check, wants_progress
from .principal import principal
from .results import ChatCancel, ChatResult, ChatStatus, Usage, complete_result, complete_text
from .state import AppState, app_state, error_result, session_uri, structured_result

logger = logging.getLogger(__name__)

SessionIdArg = Annotated[str, Field(description="The session_id of the conversation.")]
CANCEL_GRACE_SECONDS = 10.0
"""How long cancel_chat waits for Ollama's stream to close before it answers."""


async def chat(
    message: Annotated[str, Field(description="The message to send to the local model.")],
    ctx: Context[AppState, Any],
    session_id: Annotated[
        str | None,
        Field(
            description="Continue this conversation (the session_id a previous chat call returned). "
            "Omit to start a new one. 1-64 characters: letters, digits, '-' and '_'."
        ),
    ] = None,
    model: Annotated[
        str | None,
        Field(description="Ollama model to use, e.g. 'llama3:8b'. Omit for the server's default."),
    ] = None,
    options: Annotated[
        GenerationOptions | None,
        Field(description="Generation options passed to Ollama (temperature, seed, num_predict, ...)."),
    ] = None,
    think: Annotated[
        bool | Literal["low", "medium", "high"] | None,
        Field(
            description="For thinking models (qwen3, deepseek-r1, gpt-oss): true to reason before "
            "answering, false not to; 'low', 'medium' or 'high' for models that take a level (gpt-oss). "
            "The thinking is kept apart from the answer. Omit for the model's default."
        ),
    ] = None,
    include_thinking: Annotated[
        bool,
        Field(description="Return the model's thinking too (structuredContent.thinking). Default false."),
    ] = False,
    format: Annotated[
        Literal["json"] | dict[str, Any] | None,
        Field(
            description="Make the model answer in JSON: 'json', or a JSON Schema object the answer must "
            "match. The parsed value is returned as structuredContent.data."
        ),
    ] = None,
    images: Annotated[
        list[str] | None,
        Field(
            description="Images for a vision model (llava, gemma3, llama3.2-vision): each a base64 "
            "string, a data: URI or an absolute file path on the server's machine. PNG, JPEG, GIF or WebP.",
            max_length=16,
        ),
    ] = None,
) -> Annotated[CallToolResult, ChatResult]:
    """Send a message to a local LLM (Ollama) and get its answer.

    The conversation is remembered: the answer includes a session_id; pass it back to
    continue with the earlier turns as context. The model runs on this machine, so it is
    private and free but slower and less capable than a frontier model. If it is still
    writing when this call returns (status 'generating'), call chat_result with the
    session_id to get the rest.
    """
    state = app_state(ctx)
    try:
        job = await start_chat(
            state,
            message,
            principal=principal(ctx),
            session_id=session_id,
            model=model,
            options=options,
            think=think,
            include_thinking=include_thinking,
            format=format,
            images=images or (),
        )
    except McpOllamaError as exc:
        await state.peers.log(ctx.request_context, "error", str(exc))
        return error_result(exc)
    return await _await_job(ctx, job, owner=True)


async def start_chat(
    state: AppState,
    message: str,
    *,
    session_id: str | None = None,
    model: str | None = None,
    options: GenerationOptions | None = None,
    think: Think | None = None,
    include_thinking: bool = False,
    format: Format | None = None,
    images: Sequence[str] = (),
    principal: str = LOCAL,
) -> Job:
    """Check a ``chat`` call's arguments (reading image files off the event loop) and start its job."""
    checked: tuple[Image, ...] = ()
    if images:
        checked = await anyio.to_thread.run_sync(read_images, images, state.settings.max_image_bytes)
    plan = state.chat.plan(
        message,
        session_id=session_id,
        model=model,
        options=options,
        think=think,
        format=format,
        images=checked,
        include_thinking=include_thinking,
        principal=principal,
    )
    return state.jobs.start(plan)


async def chat_result(
    session_id: SessionIdArg, ctx: Context[AppState, Any]
) -> Annotated[CallToolResult, ChatResult]:
    """Get the answer a chat call left in progress (status 'generating').

    Waits for the local model to finish, up to the server's answer deadline, and returns the
    whole answer; if it is still writing, returns the part so far again: call this once more.
    With nothing in progress it returns the session's last stored answer and says so.
    """
    state = app_state(ctx)
    try:
        sid = validate_session_id(session_id)
    except McpOllamaError as exc:
        return error_result(exc)
    who = principal(ctx)
    job = state.jobs.latest(sid, who)
    if job is not None:
        return await _await_job(ctx, job, owner=False)
    return await anyio.to_thread.run_sync(_from_store, state, sid, who)


async def cancel_chat(
    session_id: SessionIdArg, ctx: Context[AppState, Any]
) -> Annotated[CallToolResult, ChatCancel]:
    """Stop the local model writing an answer in this session (one chat left in progress).

    The unfinished answer is thrown away and the session stays as it was before that message.
    """
    state = app_state(ctx)
    try:
        sid = validate_session_id(session_id)
        who = principal(ctx)
        running = [job for job in state.jobs.in_session(sid, who) if not job.done]
        if (
            not running
            and await anyio.to_thread.run_sync(partial(state.store.get_session, sid, principal=who)) is None
        ):
            raise SessionNotFound(sid)
    except McpOllamaError as exc:
        return error_result(exc)
    discarded = 0
    for job in running:
        discarded += job.tokens
        if job.cancel("cancelled with cancel_chat"):
            state.jobs.keep(job)
    for job in running:
        await job.join(CANCEL_GRACE_SECONDS)
    result = ChatCancel(session_id=sid, cancelled=bool(running), discarded_tokens=discarded)
    if running:
        text = (
            f"Stopped the answer being written in session {sid} ({count(discarded, 'token')} discarded). "
            "The session is as it was before that message."
        )
    else:
        text = f"Nothing is being written in session {sid}; nothing to cancel."
    return structured_result(text, result)


async def _await_job(ctx: Context[AppState, Any], job: Job, *, owner: bool) -> CallToolResult:
    """Wait for ``job`` up to the answer deadline, relaying its progress, then describe it.

    ``owner``: this request started the job. A cancelled owner stops the model, and while the
    owner waits, the finished turn is handed to it to store: the turn is stored exactly when
    this request is answered (see ``Handoff``), so a cancel that races the answer leaves the
    session unchanged.
    """
    state = app_state(ctx)
    settings = state.settings
    deadline = math.inf if not settings.answer_deadline else settings.answer_deadline
    request = ctx.request_context
    job.owned = owner or job.owned
    try:
        async with _relaying_progress(ctx, job, settings.progress_interval):
            with anyio.move_on_after(deadline):
                while not job.done and not (owner and job.handoff is not None):
                    await job.changed.wait()
    except anyio.get_cancelled_exc_class():
        if owner:
            if job.handoff is not None:
                job.handoff.decline()
            job.cancel("the request was cancelled")
        raise
    finally:
        if owner and job.handoff is None:
            job.owned = False  # from now on the job stores its own turn
    if owner and job.handoff is not None and not job.handoff.settled.is_set():
        await state.peers.log(request, "info", _answered(job))
        outcome = await job.handoff.run(cancel_check(request))
        # Nothing awaits from here to the answer: a cancel cannot slip in between.
        if outcome is None:
            return error_result(McpOllamaError("The request was cancelled; nothing was stored."))
        return _complete(job, outcome)
    if not job.done:
        state.jobs.keep(job)
        return _generating(job)
    if job.error is not None:
        logger.info("chat failed: %s", job.error)
        await state.peers.log(request, "error", str(job.error))
    elif job.outcome is not None:
        await state.peers.log(request, "info", _answered(job))
    return finished_result(job)


def _answered(job: Job) -> str:
    return f"{job.model} answered in session {job.session_id}: {count(job.tokens, 'token')}"


@asynccontextmanager
async def _relaying_progress(ctx: Context[AppState, Any], job: Job, interval: float) -> AsyncIterator[None]:
    """Relay the job's progress while the block runs, if the request asked for progress at all."""
    if not wants_progress(ctx.request_context):
        yield
        return

    async def report(value: float, message: str) -> None:
        await ctx.report_progress(value, None, message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow, job, report, interval)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


def finished_result(job: Job) -> CallToolResult:
    """What ``chat`` (or ``chat_result``, or a task's result) answers for a job that has ended."""
    if job.state is JobState.COMPLETE and job.outcome is not None:
        return _complete(job, job.outcome)
    if job.error is not None:
        return error_result(job.error)
    status: ChatStatus = "interrupted" if job.state is JobState.INTERRUPTED else "cancelled"
    result = ChatResult(
        session_id=job.session_id, model=job.model, answer="", status=status, tokens_so_far=job.tokens
    )
    text = (
        f"The answer in session {job.session_id} was {status} ({job.stop_reason}) after "
        f"{count(job.tokens, 'token')}; nothing of it was stored. Send the message again with chat to get "
        "an answer."
    )
    return structured_result(text, result)


def _complete(job: Job, outcome: TurnOutcome) -> CallToolResult:
    thinking = job.plan.include_thinking
    return structured_result(
        complete_text(outcome, include_thinking=thinking), complete_result(outcome, include_thinking=thinking)
    )


def _generating(job: Job) -> CallToolResult:
    sid = job.session_id
    if job.state is JobState.QUEUED:
        doing = "is waiting for the previous answer in this session to finish"
    elif job.tokens == 0 and job.thoughts:
        doing = f"is thinking ({count(job.thoughts, 'token')} of thinking so far)"
    elif job.tokens == 0:
        doing = "has not written anything yet (it may be loading the model or reading the prompt)"
    else:
        doing = f"is still writing ({count(job.tokens, 'token')} so far)"
    text = (
        f"The local model {doing}. Call `chat_result` with session_id {sid!r} to get the rest; "
        f"`cancel_chat` stops it.\n\nSo far:\n{job.partial}"
        if job.tokens
        else f"The local model {doing}. Call `chat_result` with session_id {sid!r} to get the answer; "
        "`cancel_chat` stops it."
    )
    result = ChatResult(
        session_id=sid, model=job.model, answer=job.partial, status="generating", tokens_so_far=job.tokens
    )
    return structured_result(text, result)


def _from_store(state: AppState, sid: str, who: str) -> CallToolResult:
    """``chat_result`` with no job of this process in the session: what the store knows."""
    record = state.store.latest_job(sid, principal=who)
    last = state.store.last_answer(sid, principal=who)
    if record is not None and (last is None or record.started_at > last[0].created_at):
        found = state.jobs.stored_state(record)
        if found in (JobState.INTERRUPTED, JobState.CANCELLED):
            status: ChatStatus = "interrupted" if found is JobState.INTERRUPTED else "cancelled"
            result = ChatResult(session_id=sid, model=record.model, answer="", status=status)
            why = record.detail or "the server stopped before the answer was complete"
            text = (
                f"The answer in session {sid} was {status} ({why}); nothing of it was stored. "
                "Send the message again with chat to get an answer."
            )
            return structured_result(text, result)
        if found is JobState.FAILED:
            return error_result(McpOllamaError(record.detail or "The answer failed."))
        if found is not JobState.COMPLETE:
            result = ChatResult(session_id=sid, model=record.model, answer="", status="generating")
            text = (
                f"Another mcp-ollama process is writing the answer in session {sid}; it is stored "
                f"in the session when complete (resource {session_uri(sid)}). Call chat_result again later."
            )
            return structured_result(text, result)
    if last is None:
        if state.store.get_session(sid, principal=who) is None:
            return error_result(SessionNotFound(sid))
        return structured_result(
            f"Session {sid} has no stored answer and nothing is being written.",
            ChatResult(session_id=sid, model="", answer="", status="stored"),
        )
    message, meta = last
    result = ChatResult(
        session_id=sid,
        model=str(meta.get("model", "")),
        answer=message.content,
        done_reason=meta.get("done_reason"),
        status="stored",
        usage=Usage(
            prompt_tokens=_count(meta.get("prompt_tokens")),
            completion_tokens=_count(meta.get("completion_tokens")),
        ),
    )
    text = (
        f"Nothing is being written in session {sid}; this is its last stored answer "
        f"({message.created_at.isoformat(timespec='seconds')}):\n\n{message.content}"
    )
    return structured_result(text, result)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
