"""What failover in ``pool`` decides by: the failures that leave a chat for another server, which
of them another server might answer, and the answer that stays on its server once started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Self

from ..backend_errors import ModelNotFound, OllamaStatusError, OllamaTimeout, OllamaUnreachable, StreamError
from ..errors import BackendError
from .health import Server
from .models import ChatChunk

CHAT_FAILURES = (OllamaUnreachable, OllamaTimeout, OllamaStatusError, ModelNotFound, StreamError)
"""What a chat may fail with before its first chunk and be left for the next server."""


class Started:
    """The chunks of an answer whose first chunk was read to decide on failover; a break or a
    timeout from here on sets the server aside, a complete answer clears its record."""

    def __init__(self, first: ChatChunk, rest: AsyncIterator[ChatChunk], server: Server) -> None:
        self._first: ChatChunk | None = first
        self._rest = rest
        self._server = server

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            try:
                chunk = await anext(self._rest)
            except (StreamError, OllamaTimeout) as exc:
                self._server.fail(exc)
                raise
        if chunk.done:
            self._server.health.succeeded()
        return chunk


def worth_another_server(exc: BackendError) -> bool:
    """Whether another server might answer where this one did not (not a 400: the request's fault)."""
    if isinstance(exc, OllamaStatusError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, OllamaUnreachable | OllamaTimeout | ModelNotFound | StreamError)
