"""Collecting one streamed answer: thinking apart from content, capped in length and in time."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from ..backend.models import ChatChunk, ChatRequest
from .ports import ModelBackend
from .text import clean_text
from .thinking import ThinkSplitter, split_thinking
from .turns import TurnObserver


@dataclass(frozen=True)
class AnswerLimits:
    """How much of an answer is kept: characters (thinking and answer together) and seconds."""

    max_chars: int
    max_seconds: float


async def stream_answer(
    backend: ModelBackend,
    request: ChatRequest,
    observer: TurnObserver,
    limits: AnswerLimits,
    *,
    principal: str = "",
) -> tuple[str, str | None, ChatChunk]:
    """Collect the streamed answer and thinking, telling ``observer`` of every piece.

    Thinking comes as ``message.thinking`` or, from some models, inline as a
    ``<think>…</think>`` block; either way it is kept apart from the answer. Both together
    are capped in length (``limits.max_chars``), and the whole in time
    (``limits.max_seconds``): past either, the stream is closed (Ollama stops) and the
    answer so far is the answer, with the cap as its ``done_reason``.
    """
    pieces: list[str] = []
    thought: list[str] = []
    splitter = ThinkSplitter()
    size = 0
    limit = limits.max_chars
    final: ChatChunk | None = None

    def take(thinking: str, content: str) -> bool:
        """Keep the pieces; False once the cap is reached."""
        nonlocal size
        for text, into, tell in (
            (thinking, thought, observer.thinking),
            (content, pieces, observer.token),
        ):
            if not text:
                continue
            if size + len(text) > limit:
                into.append(text[: limit - size])
                return False
            into.append(text)
            size += len(text)
            tell(text)
        return True

    with anyio.move_on_after(limits.max_seconds):
        async with backend.chat_stream(request, on_wait=observer.waiting, principal=principal) as chunks:
            async for chunk in chunks:
                message = chunk.message
                if message is not None:
                    inline, content = splitter.feed(message.content) if message.content else ("", "")
                    if not take((message.thinking or "") + inline, content):
                        final = _stopped(request.model, "max_answer_chars", len(pieces) + len(thought))
                        break
                if chunk.done:
                    final = chunk
                    take(*splitter.flush())
                    break
    if final is None:
        final = _stopped(request.model, "max_generation_seconds", len(pieces) + len(thought))
    late, answer = split_thinking(clean_text("".join(pieces)))
    thinking = clean_text("".join(thought)).strip() + (("\n\n" + late) if late else "")
    return answer, thinking.strip() or None, final


def _stopped(model: str, reason: str, pieces: int) -> ChatChunk:
    """The final chunk Ollama did not send, for an answer we stopped."""
    return ChatChunk(
        model=model,
        created_at="",
        done=True,
        done_reason=reason,
        total_duration=None,
        load_duration=None,
        prompt_eval_count=None,
        prompt_eval_duration=None,
        eval_count=pieces,
        eval_duration=None,
    )
