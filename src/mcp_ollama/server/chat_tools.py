"""The ``chat``, ``chat_result`` and ``cancel_chat`` tools: chat turns as jobs that outlive requests.

``chat`` starts a job and waits for it up to the answer deadline. Finished in time, the result
is the whole answer (``status: "complete"``); otherwise it is the part written so far
(``status: "generating"``) and the job carries on: ``chat_result`` waits again and returns
the rest, ``cancel_chat`` stops it. A ``notifications/cancelled`` for the ``chat`` request
itself stops the model, unless its reason says the host's own timeout ran out: then the answer is
kept for ``chat_result`` (``waiting``, ``patience``). Results are shaped in ``chat_results``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..backend.models import GenerationOptions, Think
from ..core.images import ImageBatch, ImageRules, in_flight_for, read_images
from ..core.job import Job
from ..core.jobs import ELSEWHERE_POLL_SECONDS
from ..core.keepalive import KEEP_ALIVE_HELP, check_keep_alive
from ..core.planning import plan_turn
from ..core.structured import Format
from ..core.text import count
from ..errors import McpOllamaError, ModelCannot, SessionNotFound
from ..store import LOCAL, validate_session_id
from .chat_results import finished_result, from_store, newest_session, still_generating
from .errors import public_text, tool_error
from .principal import principal
from .replicas import stop_elsewhere
from .results import ChatCancel, ChatResult
from .state import AppState, app_state, structured_result
from .waiting import await_job

logger = logging.getLogger(__name__)

__all__ = ["cancel_chat", "chat", "chat_result", "finished_result", "start_chat"]

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
            "string or a data: URL; PNG, JPEG, GIF or WebP. A server on your own machine (stdio) also "
            "reads an absolute file path in the directories it allows (--image-dirs, default your home "
            "directory); over HTTP pass images inline.",
            max_length=16,
        ),
    ] = None,
    keep_alive: Annotated[str | int | None, Field(description=KEEP_ALIVE_HELP)] = None,
) -> Annotated[CallToolResult, ChatResult]:
    """Send a message to a local LLM (Ollama) and get its answer.

    The conversation is remembered: the answer includes a session_id; pass it back to
    continue with the earlier turns as context. The model runs on this machine, so it is
    private and free but slower and less capable than a frontier model. If it is still
    writing when this call returns (status 'generating'), call chat_result with the
    session_id to get the rest. If this call timed out or was cut off before you saw a
    session_id, the answer is kept all the same: call chat_result with no arguments to get
    your most recent chat's answer.
    """
    started = time.monotonic()
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
            keep_alive=keep_alive,
        )
    except McpOllamaError as exc:
        await state.peers.log(ctx.request_context, "error", public_text(exc))
        return tool_error(exc)
    return await await_job(ctx, job, owner=True, started=started)


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
    keep_alive: str | int | None = None,
) -> Job:
    """Check a ``chat`` call's arguments (reading image files off the event loop) and start its job.

    Images come last: every other argument, and whether the model can see at all, is checked
    before any image is read, so no answer depends on what a path holds but the path's own.
    """
    plan = plan_turn(
        state.settings,
        message,
        session_id=session_id,
        model=model,
        options=options,
        think=think,
        format=format,
        include_thinking=include_thinking,
        principal=principal,
    )
    plan = plan if keep_alive is None else replace(plan, keep_alive=check_keep_alive(keep_alive))
    if images:
        await _require_vision(state, plan.model)
        rules = ImageRules.for_call(state.settings, principal)
        read = partial(read_images, images, rules, in_flight=in_flight_for(state.chat), principal=principal)
        batch: ImageBatch = await anyio.to_thread.run_sync(read)
        plan = replace(plan, images=batch)
    return state.jobs.start(plan)


async def _require_vision(state: AppState, model: str) -> None:
    """Refuse images for a model that says it cannot see, before any of them is read."""
    catalog = await state.chat.catalog_for(model)
    shown = await catalog.details(model)
    if shown is not None and shown.capabilities and "vision" not in shown.capabilities:
        raise ModelCannot(model, "see images", "vision", await catalog.able("vision"), "gemma3")


async def chat_result(
    ctx: Context[AppState, Any],
    session_id: Annotated[
        str | None,
        Field(
            description="The session_id of the conversation. Omit to get your most recent chat "
            "(for instance when a chat call timed out before you saw its session_id)."
        ),
    ] = None,
) -> Annotated[CallToolResult, ChatResult]:
    """Get the answer a chat call left in progress (status 'generating', or a call that timed out).

    Waits for the local model to finish, up to the server's answer deadline, and returns the
    whole answer; if it is still writing, returns the part so far again: call this once more.
    With nothing in progress it returns the session's last stored answer and says so.
    """
    started = time.monotonic()
    state = app_state(ctx)
    who = principal(ctx)
    try:
        sid = validate_session_id(session_id) if session_id is not None else None
    except McpOllamaError as exc:
        return tool_error(exc)
    job = state.jobs.latest(sid, who) if sid is not None else state.jobs.newest(who)
    if job is not None:
        return await await_job(ctx, job, owner=False, started=started)
    if sid is None:
        try:
            sid = await anyio.to_thread.run_sync(newest_session, state, who)
        except McpOllamaError as exc:
            return tool_error(exc)
        if sid is None:
            return tool_error(
                McpOllamaError("There is no chat to get an answer from yet: send a message with chat first.")
            )
    found = await anyio.to_thread.run_sync(from_store, state, sid, who)
    if still_generating(found):  # another replica (or process) writes it: wait as its owner would
        deadline = await state.patience.deadline(
            state.store, ctx.request_context, state.settings.answer_deadline
        )
        with anyio.move_on_after(deadline - (time.monotonic() - started)):
            while still_generating(found):
                await anyio.sleep(ELSEWHERE_POLL_SECONDS)
                found = await anyio.to_thread.run_sync(from_store, state, sid, who)
    return found


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
        if not running and (elsewhere := await stop_elsewhere(state, sid, who, CANCEL_GRACE_SECONDS)):
            return elsewhere
        if (
            not running
            and await anyio.to_thread.run_sync(partial(state.store.get_session, sid, principal=who)) is None
        ):
            raise SessionNotFound(sid)
    except McpOllamaError as exc:
        return tool_error(exc)
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
