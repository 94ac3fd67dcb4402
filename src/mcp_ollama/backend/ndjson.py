"""``ChunkStream``: a streamed NDJSON body from Ollama, one ``ChatChunk`` at a time."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager, suppress
from typing import Self, cast

import anyio
import anyio.lowlevel
import httpx
from pydantic import ValidationError

from ..backend_errors import StreamError
from .foreign import _preview
from .models import ChatChunk

CLOSED_EARLY = "the connection closed before the answer was complete"
# A single NDJSON line is one token plus metadata; anything this long is not Ollama talking.
_MAX_LINE_BYTES = 16 * 1024 * 1024
ERROR_TEXT_LIMIT = 500


class ChunkStream:
    """Splits a streamed NDJSON body into ``ChatChunk`` objects.

    Lines are split on ``\\n`` only: httpx's ``aiter_lines`` also splits on U+0085, U+2028 and
    friends, which Go's JSON encoder may leave unescaped inside a token.
    """

    def __init__(
        self,
        url: str,
        translate_errors: Callable[[], AbstractContextManager[None]],
        response: httpx.Response,
    ) -> None:
        """``translate_errors``: the client's mapping of transport errors to the error tree."""
        self._url = url
        self._translate_errors = translate_errors
        # httpx annotates it as an AsyncIterator; it is a generator, which we close explicitly.
        self._body = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
        self._buffer = bytearray()
        self._body_ended = False
        self._finished = False
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._closed:
            raise RuntimeError("chat chunks read after the chat_stream block was left")
        if self._finished:
            raise StopAsyncIteration
        try:
            line = await self._next_line()
            if line is None:
                raise StreamError(self._url, CLOSED_EARLY)
            chunk = self._parse(line)
            if chunk.done:
                # Read the (empty) rest of the body so the connection goes back to the pool.
                while await self._next_line() is not None:
                    pass
        except BaseException:
            self._finished = True
            raise
        if chunk.done:
            self._finished = True
        return chunk

    async def aclose(self) -> None:
        self._closed = True
        await close_quietly(self._body)

    async def _next_line(self) -> bytes | None:
        """The next non-blank line, or None at the end of the body."""
        while True:
            if self._buffer[:1].isspace():
                # Blank lines between answers are skipped in bulk (one pass per chunk, then a
                # checkpoint): a flood of them must neither freeze the server nor cost a pass each.
                kept = self._buffer.lstrip()
                del self._buffer[: len(self._buffer) - len(kept)]
                await anyio.lowlevel.checkpoint()
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    return line
                continue
            if self._body_ended:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line if line.strip() else None
            if len(self._buffer) > _MAX_LINE_BYTES:
                raise StreamError(self._url, f"malformed line from Ollama: {_preview(self._buffer)}")
            with self._translate_errors():
                try:
                    self._buffer += await anext(self._body)
                except StopAsyncIteration:
                    self._body_ended = True

    def _parse(self, line: bytes) -> ChatChunk:
        url = self._url
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise StreamError(url, f"malformed line from Ollama: {_preview(line)}") from exc
        if isinstance(data, dict) and "error" in data:
            raise StreamError(url, f"Ollama reported: {clip(str(data['error']))}")
        try:
            return ChatChunk.model_validate(data)
        except ValidationError as exc:
            raise StreamError(url, f"malformed line from Ollama: {_preview(line)}") from exc


_DRAINED = httpx.ByteStream(b"")
"""What a closed response's stream becomes (``close_quietly``)."""


async def close_quietly(closable: httpx.Response | AsyncGenerator[bytes, None]) -> None:
    """Close a response or body iterator; failing to close a dropped connection is not news.

    A closed response is also cut loose from its stream, which points back at it (httpx sets the
    response's ``elapsed`` through it). Without that cycle the response, its request and their
    headers go with the last reference instead of waiting for the garbage collector: about 40
    objects a chat, which had set off a collection every ten chats (issue 21).
    """
    with suppress(httpx.HTTPError, OSError):
        await closable.aclose()
    if isinstance(closable, httpx.Response):
        closable.stream = _DRAINED


def clip(text: str) -> str:
    """Ollama's error text at a readable length."""
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"
