"""MCP over this process's stdin and stdout, answering what the SDK's stdio transport drops.

Like the SDK's ``stdio_server`` it yields the two memory streams ``Server.run`` takes, and
while serving points fd 1 at stderr (and ``sys.stdout`` too), so a stray ``print`` in any
library can never corrupt the JSON-RPC stream. Unlike it:

- a line that is not JSON gets a -32700 error response, and one that is JSON but no valid
  JSON-RPC message gets -32600 (with the request's id when it has a usable one); the SDK
  drops both silently;
- stdin is read by the event loop itself when it is a pipe or a socket (as every host runs
  a server), which saves a thread switch each way per message; anything else (a terminal, a
  file, any stdin on Windows) is read in a daemon thread. Either way SIGTERM can end the
  process without waiting for the client to close its end of the pipe;
- lines may end in ``\\r\\n`` (a Windows host may send that); what we write always ends in
  ``\\n`` alone, with both pipes in binary mode on Windows.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, jsonrpc_message_adapter
from pydantic import ValidationError

ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]


def _usable_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def classify_line(line: bytes) -> SessionMessage | JSONRPCError | None:
    """A parsed message, the error response a bad line deserves, or ``None`` to drop it silently.

    Drops only what JSON-RPC says gets no answer: blank lines, and malformed notifications
    (a ``method`` with no ``id``).
    """
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return _error(None, PARSE_ERROR, "Parse error: the line is not valid JSON")
    if not isinstance(data, dict):
        kind = "batches are not supported" if isinstance(data, list) else "a message must be a JSON object"
        return _error(None, INVALID_REQUEST, f"Invalid Request: {kind}")
    has_id = "id" in data
    if "method" in data and has_id and not _usable_id(data["id"]):
        return _error(None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_python(data, by_name=False))
    except (ValidationError, RecursionError):
        if "method" in data and not has_id:
            return None
        request_id = data["id"] if has_id and _usable_id(data["id"]) and "method" in data else None
        return _error(request_id, INVALID_REQUEST, "Invalid Request: not a valid JSON-RPC 2.0 message")


def _error(request_id: str | int | None, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


def _encode(message: SessionMessage | JSONRPCError) -> bytes:
    model = message if isinstance(message, JSONRPCError) else message.message
    exclude_unset = not isinstance(message, JSONRPCError)
    try:
        text = model.model_dump_json(by_alias=True, exclude_unset=exclude_unset)
    except ValueError:
        # A lone surrogate ("\ud800" is legal JSON) echoed back in an id, a method name or a
        # URI cannot be written as UTF-8; the standard library escapes it instead.
        data = model.model_dump(mode="python", by_alias=True, exclude_unset=exclude_unset)
        text = json.dumps(data, ensure_ascii=True, default=str)
    return text.encode() + b"\n"


@asynccontextmanager
async def stdio_transport(
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    first_written: anyio.Event | None = None,
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """Serve the process's stdin/stdout (or the given binary files) as MCP streams; set
    ``first_written`` once the first message is out (the ``initialize`` answer, for a host)."""
    restore: list[tuple[int, int]] = []
    saved_sys_stdout = sys.stdout
    if stdin is None:
        stdin = os.fdopen(_binary(os.dup(0)), "rb")  # buffered: readline() returns at a newline on pipes
        _divert(0, os.open(os.devnull, os.O_RDONLY), restore)
    if stdout is None:
        stdout = os.fdopen(_binary(os.dup(1)), "wb", buffering=0)
        _divert(1, os.dup(2), restore)
        sys.stdout = sys.stderr
    reader_in, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, writer_out = anyio.create_memory_object_stream[SessionMessage](0)
    write_lock = anyio.Lock()
    out = stdout
    out_fd = _nonblocking_fd(out)

    async def write(message: SessionMessage | JSONRPCError) -> None:
        data = _encode(message)
        async with write_lock:
            if out_fd is None:
                await anyio.to_thread.run_sync(out.write, data)
            else:
                await _write_all(out_fd, data)

    async def deliver(line: bytes) -> None:
        parsed = classify_line(line)
        if isinstance(parsed, SessionMessage):
            await reader_in.send(parsed)
        elif parsed is not None:
            await write(parsed)

    async def read_in_loop(fd: int) -> None:
        try:
            async for line in _lines(fd):
                await deliver(line)
            await reader_in.aclose()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass  # the server is shutting down, or stdin is gone: nothing left to deliver

    def read_in_thread(portal: BlockingPortal) -> None:
        # A daemon thread, not an anyio worker: a worker blocked in readline() would keep the
        # interpreter from exiting after SIGTERM until the client closes the pipe.
        try:
            for line in iter(stdin.readline, b""):
                portal.call(deliver, line)
            portal.call(reader_in.aclose)
        except (RuntimeError, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass  # the server is shutting down, or stdin is gone: nothing left to deliver

    async def write_stdout() -> None:
        async with writer_out:
            async for message in writer_out:
                await write(message)
                if first_written is not None:
                    first_written.set()

    in_fd = _pollable_fd(stdin)
    try:
        async with BlockingPortal() as portal, anyio.create_task_group() as tg:
            if in_fd is None:
                threading.Thread(target=read_in_thread, args=(portal,), name="mcp-stdin", daemon=True).start()
            else:
                tg.start_soon(read_in_loop, in_fd)
            tg.start_soon(write_stdout)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()
                # A line the reader thread is still handing over is dropped: the server is done.
                await portal.stop(cancel_remaining=True)
    finally:
        for fd in (in_fd, out_fd):
            if fd is not None and sys.platform != "win32":
                with suppress(OSError):
                    os.set_blocking(fd, True)
        sys.stdout = saved_sys_stdout
        for fd, saved in reversed(restore):
            with suppress(OSError):
                os.dup2(saved, fd)
                os.close(saved)


def _pollable_fd(stream: BinaryIO) -> int | None:
    """``stream``'s descriptor, made non-blocking, when it is a pipe or a socket the event loop
    can wait on; ``None`` for a terminal (whose non-blocking mode the shell would inherit), a
    file (which epoll refuses), or anything on Windows (``_nonblocking_fd``)."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    return _nonblocking_fd(stream)


async def _lines(fd: int) -> AsyncIterator[bytes]:
    """The lines read from the non-blocking ``fd``, each with its ``\\n``, then what follows the
    last one, as ``readline()`` gives them; the loop waits whenever the pipe is empty."""
    buffer = bytearray()
    scanned = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        if not chunk:
            break
        buffer += chunk
        while (end := buffer.find(b"\n", scanned)) >= 0:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]  # cheap: a bytearray drops its head without copying the rest
            scanned = 0
            yield line
        scanned = len(buffer)
    if buffer:
        yield bytes(buffer)


def _nonblocking_fd(stream: BinaryIO) -> int | None:
    """``stream``'s descriptor, made non-blocking, where the event loop can wait on it.

    Writing straight from the loop saves two thread switches per message; the pipe's buffer
    takes a whole message almost always, and the loop waits when it does not. On Windows
    pipes cannot be polled: ``None`` there, and writes go through a worker thread.
    """
    if sys.platform == "win32":
        return None
    try:
        fd = stream.fileno()
        os.set_blocking(fd, False)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


async def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await anyio.wait_writable(fd)
            continue
        view = view[written:]


def _binary(fd: int) -> int:
    """``fd`` in binary mode: on Windows the C runtime would otherwise write ``\\n`` as ``\\r\\n``."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.setmode(fd, os.O_BINARY)
    return fd


def _divert(fd: int, replacement: int, restore: list[tuple[int, int]]) -> None:
    """Point ``fd`` at ``replacement``, remembering how to put it back."""
    restore.append((fd, os.dup(fd)))
    os.dup2(replacement, fd)
    os.close(replacement)
