"""``FakeOllama``: the server thread, its life cycle and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from .embedding import _Embed
from .state import RecordedRequest
from .wire import _BadRequest, _ClientGone, _Connection


class FakeOllama(_Embed):
    """A fake Ollama on 127.0.0.1, served from a background thread.

    ``with FakeOllama() as fake:`` starts it; ``fake.url`` is its address. Script chat
    answers with ``fake.default = Behavior(...)`` or ``fake.enqueue(Behavior(...))`` (the
    next chat requests, first in first out), and inspect ``requests``, ``chat_requests``,
    ``hangups`` and ``active_streams``. Every method may be called from any thread.

    Model loading: ``load_delay`` is how long loading a model takes; every load is recorded
    in ``loads``. Chat requests without messages (preloads and unloads) never take a scripted
    ``Behavior``: those script generation only.

    Prompt tokens: with ``tokenizer=True`` (the default; ``reset()`` restores the constructor's
    value) a chat's ``prompt_eval_count`` is ``count_prompt_tokens`` of its messages for the model
    named, and a prompt longer than the request's ``num_ctx`` (4096 if unset, at most the model's
    ``context_length``) loses its oldest non-system messages, silently, as in Ollama
    (``fit_context``): the answer's counts and the echo reply reflect what was kept, and
    ``truncations`` records it. With ``tokenizer=False`` ``prompt_eval_count`` is the number of
    words in the messages and nothing is ever dropped.
    """

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Start serving; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeOllama is already running")
        ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-ollama", daemon=True)
        self._thread.start()
        ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeOllama failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Stop serving: close the listener and every connection, end the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None
        self._loop = None
        failure, self._failure = self._failure, None
        if failure is not None:
            raise RuntimeError("FakeOllama crashed") from failure

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOllama is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the server thread ------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:  # surfaced by start() or stop(), not as a thread crash
            self._failure = exc
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._load_locks = {}  # asyncio locks and events belong to one event loop
        self._load_delay_changed = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, "127.0.0.1", self._requested_port)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        with self._cond:
            self._connections += 1
            number = self._connections
        conn = _Connection(reader, writer, number)
        try:
            while await self._serve_one(conn):
                pass
        except _ClientGone:
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve_one(self, conn: _Connection) -> bool:
        """Answer one request; True if the connection stays open for another."""
        request = await conn.read_request()
        if request is None:
            return False
        if isinstance(request, _BadRequest):
            await conn.send(400, b"400 Bad Request", "text/plain; charset=utf-8", keep_alive=False)
            return False
        body = request.json_object()
        with self._cond:
            self._requests.append(
                RecordedRequest(request.method, request.path, body, conn.number, dict(request.headers))
            )
        keep_alive = request.keep_alive
        route = (request.method, request.path)
        if route in (("GET", "/"), ("HEAD", "/")):
            text = b"" if request.method == "HEAD" else b"Ollama is running"
            await conn.send(200, text, "text/plain; charset=utf-8", keep_alive=keep_alive)
        elif route == ("GET", "/api/version"):
            await conn.send_json(200, {"version": self.version}, keep_alive=keep_alive)
        elif route == ("GET", "/api/tags"):
            await conn.send_json(200, {"models": [m.tag() for m in self.models]}, keep_alive=keep_alive)
        elif route == ("GET", "/api/ps"):
            await conn.send_json(200, {"models": self._running()}, keep_alive=keep_alive)
        elif route == ("POST", "/api/show"):
            await self._show(conn, request, keep_alive)
        elif route == ("POST", "/api/chat"):
            return await self._chat(conn, request) and keep_alive
        elif route == ("POST", "/api/pull"):  # pulling.py
            return await self._pull(conn, request) and keep_alive
        elif route == ("POST", "/api/embed"):  # embedding.py
            return await self._embed(conn, request) and keep_alive
        else:  # what gin answers for an unknown route or method
            await conn.send(404, b"404 page not found", "text/plain", keep_alive=keep_alive)
        return keep_alive
