"""Stand-ins for Ollama where the fake Ollama cannot misbehave the way a test needs: a few lines of
HTTP on an anyio listener in the test's own event loop (``raw_ollama``), a loopback address that
never accepts (``never_accepting``), and ``no_finalizers`` to catch a stream left open."""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketAttribute, SocketStream

MODEL = "llama3:8b"


@dataclass
class RawOllama:
    """What the scripted server saw: connections, and whether the client hung up."""

    url: str = ""
    connections: int = 0
    hung_up: anyio.Event = field(default_factory=anyio.Event)


Script = Callable[[SocketStream], Awaitable[None]]


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def ndjson(token: str, done: bool = False) -> bytes:
    content = token.replace('"', '\\"')
    return (
        f'{{"model":"{MODEL}","created_at":"2024-01-01T00:00:00Z",'
        f'"message":{{"role":"assistant","content":"{content}"}},"done":{str(done).lower()}}}\n'
    ).encode()


@asynccontextmanager
async def raw_ollama(script: Script) -> AsyncIterator[RawOllama]:
    """Serve every connection: read one request and run ``script`` until the client hangs up."""
    seen = RawOllama()

    async def handle(stream: SocketStream) -> None:
        seen.connections += 1

        async def until_hangup(scope: anyio.CancelScope) -> None:
            try:
                while True:  # whatever else the client sends, until it closes
                    await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            seen.hung_up.set()
            scope.cancel()

        async def run_script() -> None:
            try:
                await script(stream)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                seen.hung_up.set()

        async with stream:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
                if not head.startswith(b"POST /api/chat "):  # the model's details: a plain model
                    body = b'{"capabilities":["completion"],"model_info":{}}'
                    await stream.send(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    return
                async with anyio.create_task_group() as tg:
                    tg.start_soon(until_hangup, tg.cancel_scope)
                    tg.start_soon(run_script)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                seen.hung_up.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    seen.url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield seen
        tg.cancel_scope.cancel()


@asynccontextmanager
async def no_finalizers() -> AsyncIterator[list[AsyncGenerator[object, None]]]:
    """Keep, unclosed, every async generator dropped before it was closed (and turn the garbage
    collector off). asyncio's finalizer hook would otherwise close a dropped response body (and
    with it the connection) as soon as the last reference goes, which hides a stream left open
    whenever anything still holds it. The promise is an explicit close, whoever holds what.
    (httpx itself leaves its inner body generators to the hook once the response is closed: those
    are kept too, harmlessly, and closed on the way out.)"""
    hooks = sys.get_asyncgen_hooks()
    kept: list[AsyncGenerator[object, None]] = []
    collecting = gc.isenabled()
    gc.disable()
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=kept.append)
    try:
        yield kept
    finally:
        sys.set_asyncgen_hooks(*hooks)
        if collecting:
            gc.enable()
        with anyio.CancelScope(shield=True):
            for generator in kept:
                with suppress(Exception):
                    await generator.aclose()


@contextmanager
def never_accepting() -> Iterator[str]:
    """A loopback address whose listen queue is full: a connection attempt waits, unanswered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in (*fillers, server):
            sock.close()
