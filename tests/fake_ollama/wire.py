"""HTTP/1.1 by hand, framed the way Go's net/http frames it, and JSON the way Go writes it."""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

# Go's net/http sends a Content-Length when the whole body fits its buffer, chunks otherwise.
_GO_BUFFER = 2048
_MAX_HEAD = 64 * 1024


class _ClientGone(Exception):
    """The client closed its side, or a write to it failed."""


class _BadRequest:
    """A request the fake cannot parse; answered with 400 and a closed connection."""


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    def json_object(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


class _Connection:
    """One accepted TCP connection: a buffered reader that can watch for EOF, and a writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        self.reader = reader
        self.writer = writer
        self.number = number
        self._buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    async def wait_for_hangup(self) -> None:
        """Return when the client closes its side; keeps (pipelined) bytes for later."""
        while await self._fill():
            pass

    async def _read_until(self, separator: bytes) -> bytes | None:
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > _MAX_HEAD or not await self._fill():
                return None
        data = bytes(self._buffer[:end])
        del self._buffer[: end + len(separator)]
        return data

    async def _read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_request(self) -> _Request | _BadRequest | None:
        """The next request, None if the client closed the connection between requests."""
        head = await self._read_until(b"\r\n\r\n")
        if head is None:
            return _BadRequest() if self._buffer.strip() else None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _BadRequest()
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return _BadRequest()
            headers[name.strip().lower()] = value.strip()
        request = _Request(parts[0], parts[1].split("?", 1)[0], parts[2], headers)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return _BadRequest()
            body = await self._read_exactly(length)
        if body is None:
            return _BadRequest()
        request.body = body
        return request

    async def _read_chunked_body(self) -> bytes | None:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n")
            if size_line is None:
                return None
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while await self._read_until(b"\r\n") not in (b"", None):
                    pass  # trailers
                return bytes(body)
            data = await self._read_exactly(size + 2)
            if data is None:
                return None
            body += data[:-2]

    async def write(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    @staticmethod
    def head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = f"status code {status}"
        lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def send(self, status: int, body: bytes, content_type: str, *, keep_alive: bool) -> None:
        """A whole response, framed the way Go frames it."""
        headers = [("Content-Type", content_type), ("Date", formatdate(usegmt=True))]
        if not keep_alive:
            headers.append(("Connection", "close"))
        if len(body) < _GO_BUFFER:
            headers.append(("Content-Length", str(len(body))))
            await self.write(self.head(status, headers) + body)
        else:
            headers.append(("Transfer-Encoding", "chunked"))
            pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
            await self.write(self.head(status, headers) + b"".join(map(_chunk, pieces)) + b"0\r\n\r\n")

    async def send_json(self, status: int, obj: Any, *, keep_alive: bool) -> None:
        await self.send(status, _go_json(obj), "application/json; charset=utf-8", keep_alive=keep_alive)

    async def cut(self) -> None:
        """Abort the TCP connection once what was written has left."""
        transport = self.writer.transport
        for _ in range(100):
            if transport.is_closing() or not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.001)
        transport.abort()


async def _acquire(lock: asyncio.Lock, watcher: asyncio.Task[None]) -> None:
    """Take ``lock``, but give up at once if the client hangs up meanwhile."""
    acquiring = asyncio.ensure_future(lock.acquire())
    try:
        await asyncio.wait({acquiring, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not acquiring.done():
            acquiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
    if acquiring.cancelled() or watcher.done():
        if not acquiring.cancelled() and acquiring.exception() is None:
            lock.release()
        raise _ClientGone


async def _pause(delay: float, watcher: asyncio.Task[None]) -> None:
    """Sleep, but give up at once if the client hangs up meanwhile."""
    if delay > 0 and not watcher.done():
        await asyncio.wait({watcher}, timeout=delay)
    if watcher.done():
        raise _ClientGone


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_json(obj: Any) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    # A lone surrogate cannot be UTF-8: a hostile server sends it as a JSON escape, which is legal.
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


def _now() -> str:
    """The current UTC time as Go's RFC 3339 with nanoseconds."""
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
