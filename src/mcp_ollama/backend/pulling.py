"""``PullLines``: the progress lines of ``POST /api/pull``, one ``PullProgress`` at a time.

Ollama streams ``{"status": "pulling manifest"}``, then for each layer ``{"status": "pulling
<digest>", "digest", "total", "completed"}`` (many times, as the bytes arrive), then
``verifying sha256 digest``, ``writing manifest`` and ``{"status": "success"}``. A failure after
the stream has started (an unknown name included: the registry's answer comes after the first
line) is a last line ``{"error": "..."}`` under status 200. Every way the stream can go wrong
ends as ``PullFailed`` here, in Ollama's words where it gave some.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Self

from pydantic import ValidationError

from ..backend_errors import PullFailed, StreamError
from .admin_models import PullProgress
from .foreign import _preview
from .ndjson import clip

CLOSED_EARLY = "the connection closed before the pull was complete"


class PullLines:
    """An async iterator over a pull's progress lines; it ends after ``status: success``.

    ``next_line`` gives the next non-blank line of the body (None at its end) and raises
    ``StreamError`` for a broken connection or an overlong line.
    """

    def __init__(self, next_line: Callable[[], Awaitable[bytes | None]], url: str, model: str) -> None:
        self._next_line = next_line
        self._url = url
        self._model = model
        self._finished = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> PullProgress:
        if self._finished:
            raise StopAsyncIteration
        try:
            line = await self._next_line()
            if line is None:
                raise self._failed(CLOSED_EARLY)
            progress = self._parse(line)
        except StreamError as exc:
            self._finished = True
            detail = exc.detail if exc.detail.startswith("malformed") else CLOSED_EARLY
            raise self._failed(detail) from exc
        except BaseException:
            self._finished = True
            raise
        if progress.status == "success":
            self._finished = True
        return progress

    def _parse(self, line: bytes) -> PullProgress:
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            raise self._failed(f"malformed line from Ollama: {_preview(line)}") from None
        if isinstance(data, dict) and "error" in data:
            raise self._failed(clip(str(data["error"])))
        try:
            return PullProgress.model_validate(data)
        except ValidationError:
            raise self._failed(f"malformed line from Ollama: {_preview(line)}") from None

    def _failed(self, detail: str) -> PullFailed:
        return PullFailed(self._model, self._url, detail)
