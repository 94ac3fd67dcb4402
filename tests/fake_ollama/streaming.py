"""An answer on the wire: a streamed NDJSON body (chunked, the headers leaving with the first line,
faults at their token) or one JSON object (``stream: false``)."""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from typing import Any

from .behavior import _Answer
from .wire import _chunk, _Connection, _go_json, _now, _pause


class _ChunkedWriter:
    """A streamed NDJSON response; the headers leave with the first line, as in Ollama."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._started = False

    async def start(self, first: bytes = b"") -> None:
        if self._started:
            if first:
                await self._conn.write(first)
            return
        self._started = True
        headers = [
            ("Content-Type", "application/x-ndjson"),
            ("Date", formatdate(usegmt=True)),
            ("Transfer-Encoding", "chunked"),
        ]
        await self._conn.write(self._conn.head(200, headers) + first)

    async def line(self, obj: Any) -> None:
        await self.start(_chunk(_go_json(obj) + b"\n"))

    async def raw_line(self, data: bytes) -> None:
        await self.start(_chunk(data + b"\n"))

    async def finish(self) -> None:
        await self.start()
        await self._conn.write(b"0\r\n\r\n")


async def _answer_stream(conn: _Connection, answer: _Answer, watcher: asyncio.Task[None]) -> bool:
    behavior, tokens = answer.behavior, answer.tokens
    stream = _ChunkedWriter(conn)
    for index, thought in enumerate(answer.thinking):
        await _pause(behavior.first_token_delay if index == 0 else behavior.token_delay, watcher)
        await stream.line(answer.chunk("", thinking=thought))
    thought_before = bool(answer.thinking)
    for index in range(len(tokens) + 1):
        if index < len(tokens) or (index == 0 and not thought_before):
            delay = behavior.first_token_delay if index == 0 and not thought_before else behavior.token_delay
            await _pause(delay, watcher)
        if index == behavior.cut_after:
            await stream.start()
            await conn.cut()
            return False
        if index == behavior.error_after:
            await stream.line({"error": behavior.error})
            await stream.finish()
            return True
        if index == behavior.end_after:
            await stream.finish()
            return True
        if index == behavior.malformed_after:
            await stream.raw_line(_go_json(answer.chunk(tokens[0] if tokens else ""))[:40])
        if index < len(tokens):
            await stream.line(answer.chunk(tokens[index]))
    await stream.line(answer.final())
    await stream.finish()
    return True


async def _answer_whole(
    conn: _Connection, answer: _Answer, watcher: asyncio.Task[None], keep_alive: bool
) -> bool:
    behavior, tokens = answer.behavior, answer.tokens
    chunks = len(answer.thinking) + len(tokens)
    await _pause(behavior.first_token_delay + behavior.token_delay * max(chunks - 1, 0), watcher)
    if behavior.cut_after is not None:
        await conn.cut()
        return False
    if behavior.end_after is not None:
        await conn.send(200, b"", "application/json; charset=utf-8", keep_alive=keep_alive)
    elif behavior.error_after is not None:
        await conn.send_json(500, {"error": behavior.error}, keep_alive=keep_alive)
    elif behavior.malformed_after is not None:
        await conn.send(200, b'{"model": "trunc', "application/json; charset=utf-8", keep_alive=keep_alive)
    else:
        whole = answer.final(content="".join(tokens), thinking="".join(answer.thinking))
        await conn.send_json(200, whole, keep_alive=keep_alive)
    return True


def _load_answer(model: str, done_reason: str) -> dict[str, Any]:
    """Ollama's whole answer to a chat request without messages (always JSON, never streamed)."""
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done_reason": done_reason,
        "done": True,
    }
