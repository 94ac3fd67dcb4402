"""``OllamaPool``: several Ollama servers behind one front: routing, slots, failover.

A chat goes to a server that has its model (``/api/tags``, cached), in this order: healthy (not
set aside, see ``health``), a free slot for the model (``slots``), the model already in memory
(``/api/ps``, cached briefly), fewer chats in flight, a shorter time to first token (unknown counts
as fast, so a new server gets tried). Before the first token, a server that is down, hangs (no
first token within ``first_token_timeout`` while the model is in memory there), has lost the model
or breaks off (once) is left for the next server that has it; one that answers busy (429, 503) is
left too, and when none is left the chat waits and tries again, for a while. Once the answer has
started, the chat stays where it is. With a single server nothing is chosen: no listing is read
and its errors reach the caller unchanged, busy answers aside.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Self

import anyio

from ..backend_errors import OllamaStatusError, OllamaTimeout, OllamaUnreachable, StreamError
from ..errors import BackendError
from .catalog import ModelCatalog
from .client import OllamaClient
from .failover import CHAT_FAILURES, Started, worth_another_server
from .health import Server, Tuning, model_key
from .models import ChatChunk, ChatRequest
from .routing import HostModels, Router
from .slots import DEFAULT_MAX_QUEUED, OnWait, Slots, Teller

__all__ = ["DEFAULT_MAX_PARALLEL", "HostModels", "OllamaPool", "OnWait", "Tuning", "model_key"]

DEFAULT_MAX_PARALLEL = 1
"""Chats one server runs at once per model: Ollama's own ``OLLAMA_NUM_PARALLEL`` default. Ollama lowered
it to 1 in July 2025 (ollama/ollama#11330, "Reduce default parallelism to 1"); it is a semaphore per
loaded model. More requests than that wait in Ollama's own queue, so waiting here costs nothing and
lets another server take them."""
DEFAULT_FIRST_TOKEN_TIMEOUT = 120.0
"""Seconds a chat waits for its first token, the model in memory, before it tries another server."""


class OllamaPool:
    """Several ``OllamaClient``s, one per Ollama server, used as one.

    ``chat_stream`` is the entry point for chats (routing, slot, failover before the first
    token); ``slot`` gives a client for other work on a model; ``where`` says which server has
    which model; ``catalog_for`` reads a model's details from a server that has it. The pool
    owns its clients: ``aclose()`` (or ``async with``) closes them all.
    """

    def __init__(
        self,
        clients: Sequence[OllamaClient],
        *,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        model_parallel: Mapping[str, int] | None = None,
        first_token_timeout: float = DEFAULT_FIRST_TOKEN_TIMEOUT,
        max_queued_per_user: int = DEFAULT_MAX_QUEUED,
        tuning: Tuning | None = None,
    ) -> None:
        """``max_parallel``: slots per server and model; ``model_parallel``: other counts for some
        models; ``first_token_timeout`` 0 waits for the first token as long as the client does."""
        if not clients:
            raise ValueError("an OllamaPool needs at least one client")
        urls = [client.base_url for client in clients]
        if len(set(urls)) != len(urls):
            raise ValueError("each Ollama server may appear only once in a pool")
        self._tuning = tuning or Tuning()
        self._servers = [Server(client, self._tuning) for client in clients]
        self._slots = Slots(max_parallel, model_parallel or {}, max_queued=max_queued_per_user)
        self._router = Router(self._servers, self._slots, self._tuning)
        self._first_token_timeout = first_token_timeout
        self._catalogs = {server.url: ModelCatalog(server.client) for server in self._servers}

    # --- the servers --------------------------------------------------------------------------

    @property
    def clients(self) -> list[OllamaClient]:
        """The clients, in the order given."""
        return [server.client for server in self._servers]

    @property
    def several(self) -> bool:
        """Whether more than one server stands behind the pool."""
        return len(self._servers) > 1

    @property
    def max_parallel(self) -> int:
        """Slots per server for a model without a count of its own."""
        return self._slots.default

    def in_flight(self) -> dict[str, int]:
        """Chats running on each server now, by URL."""
        return {server.url: server.in_flight for server in self._servers}

    def queued(self) -> dict[str, int]:
        """Chats waiting for a slot now, by principal."""
        return self._slots.queued()

    def catalog(self, url: str) -> ModelCatalog:
        """The model details cache of the server at ``url``."""
        return self._catalogs[url]

    async def aclose(self) -> None:
        """Close every client."""
        for server in self._servers:
            await server.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def forget(self) -> None:
        """Read every server's model list again on next use (a model was pulled or removed)."""
        for server in self._servers:
            server.due = -float("inf")

    async def where(self, *, fresh: bool = False) -> dict[str, HostModels]:
        """Which server has which model, by URL, in the order given.

        Cached listings are reused unless ``fresh``; a server set aside is asked again (probed
        first) only when ``fresh``. A server that cannot be asked appears with no models and an error.
        """
        return await self._router.where(fresh=fresh)

    async def catalog_for(self, model: str) -> ModelCatalog:
        """The details cache of the server a chat on ``model`` would go to now.

        ``ModelNotFound`` (naming the models every server has) when no reachable server has it;
        ``OllamaUnreachable`` when none answers. With one server: that server's, at no cost.
        """
        return self._catalogs[(await self._router.choose(model, self._catalogs)).url]

    async def catalog_client(self, model: str) -> OllamaClient:
        """The client of the server ``catalog_for`` picks."""
        return (await self._router.choose(model, self._catalogs)).client

    async def is_loaded(self, model: str) -> bool | None:
        """Whether ``model`` is in memory on the servers running its chats now (else on those that
        have it); ``None`` when none of them could say (``/api/ps``)."""
        return await self._router.is_loaded(model)

    # --- chats --------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(
        self, model: str, *, on_wait: OnWait | None = None, principal: str = ""
    ) -> AsyncIterator[OllamaClient]:
        """A client for a server that has ``model``, holding one of its slots for that model.

        Waits (saying so to ``on_wait``) in ``principal``'s line while every such server is full.
        No failover: for chats use ``chat_stream``. A failure to connect or a timeout raised in
        the block sets that server aside.
        """
        key = model_key(model)
        candidates = await self._router.route(model, tried=())
        if not candidates:
            raise self._router.no_server(model, [])
        await self._router.read_load_state(candidates, key)
        server = await self._slots.acquire(candidates, key, principal, Teller(on_wait))
        try:
            yield server.client
        except (OllamaUnreachable, OllamaTimeout) as exc:
            server.fail(exc)
            raise
        finally:
            self._slots.release(server, key)

    @asynccontextmanager
    async def chat_stream(
        self, request: ChatRequest, *, on_wait: OnWait | None = None, principal: str = ""
    ) -> AsyncIterator[AsyncIterator[ChatChunk]]:
        """``OllamaClient.chat_stream`` on the best server for ``request.model``, with failover.

        Waits for a slot in ``principal``'s line (``TooManyWaiting`` past the cap). Until the
        first chunk has arrived, failures are left for the next server as the module says. After
        that the chat stays on its server and its errors are the client's (the server is set
        aside if it broke off). The slot is held until the block is left. When every server
        failed: the last busy or broken answer, else ``OllamaUnreachable`` (every server tried),
        else ``ModelNotFound`` (with every server's models). With one server, its own error as it is.
        """
        key = model_key(request.model)
        teller = Teller(on_wait)
        tried: list[Server] = []
        failures: list[BackendError] = []
        busy: list[Server] = []
        busy_until: float | None = None
        pause = self._tuning.busy_delay[0]
        while True:
            candidates = await self._router.route(request.model, tried=tried)
            if not candidates:
                now = time.monotonic()
                busy_until = now + self._tuning.busy_wait if busy_until is None else busy_until
                if not busy or now >= busy_until:
                    raise self._router.no_server(request.model, failures)
                are = "is" if len(busy) == 1 else "are"
                await teller.busy(f"Ollama at {' and '.join(s.shown for s in busy)} {are} busy; waiting…")
                await anyio.sleep(min(pause, busy_until - now))
                pause = min(pause * 2, self._tuning.busy_delay[1])
                tried.clear()
                busy.clear()
                continue
            await self._router.read_load_state(candidates, key)
            server = await self._slots.acquire(candidates, key, principal, teller, again=bool(failures))
            async with AsyncExitStack() as stack:
                stack.callback(self._slots.release, server, key)
                started = time.monotonic()
                try:
                    chunks, first = await self._start(server, request, stack, watch=len(candidates) > 1)
                except CHAT_FAILURES as exc:
                    if isinstance(exc, OllamaTimeout):
                        server.note_ttft(time.monotonic() - started)
                    server.fail(exc)
                    broke_before = any(isinstance(e, StreamError) for e in failures)
                    if not worth_another_server(exc) or (isinstance(exc, StreamError) and broke_before):
                        raise
                    tried.append(server)
                    failures.append(exc)
                    if isinstance(exc, OllamaStatusError) and exc.status in (429, 503):
                        busy.append(server)
                    continue
                server.note_ttft(time.monotonic() - started)
                server.health.probe_passed()  # it answers (one that was set aside, tried as the last)
                yield Started(first, chunks, server)
                return

    async def _start(
        self, server: Server, request: ChatRequest, stack: AsyncExitStack, *, watch: bool
    ) -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
        """Send the chat and read its first chunk (Ollama's headers come with it). With ``watch``,
        give up (``OllamaTimeout``) when it has not come in ``first_token_timeout`` and the model is
        in memory there, or ``/api/ps`` does not answer either: a loading model is waited for."""

        async def start() -> tuple[AsyncIterator[ChatChunk], ChatChunk]:
            chunks = await stack.enter_async_context(server.client.chat_stream(request))
            return chunks, await anext(chunks)

        limit = self._first_token_timeout
        if not watch or limit <= 0:
            return await start()
        key = model_key(request.model)
        got: tuple[AsyncIterator[ChatChunk], ChatChunk] | None = None
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:

            async def watchdog() -> None:
                await anyio.sleep(limit)
                answered = await server.read_in_memory(judge=False)
                if answered is None or (answered and key not in (server.in_memory or ())):
                    return  # it cannot say, or the model is loading: wait as long as the client does
                tg.cancel_scope.cancel()

            tg.start_soon(watchdog)
            try:
                got = await start()
            except Exception as exc:  # raised below, outside the task group
                failed = exc
            tg.cancel_scope.cancel()
        if got is not None:
            return got
        if failed is not None:
            raise failed
        raise OllamaTimeout(server.url, limit)
