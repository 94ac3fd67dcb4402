"""``OllamaPool``: several Ollama servers behind one front: which has which model, chats in flight, failover.

A chat goes to a server that has its model (read from ``/api/tags``, cached), the one with the
fewest chats in flight, and waits for a free slot while every such server already runs
``max_parallel`` chats. A server that refuses the connection is passed over for a few seconds;
one that is down, busy (429, 5xx) or has lost the model before the first token is left for the
next server that has it. Once the answer has started, the chat stays where it is. With a single
server there is nothing to choose: no listing is read and its errors reach the caller unchanged.
"""

from __future__ import annotations

import inspect
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio

from ..errors import (
    BackendError,
    ModelNotFound,
    OllamaStatusError,
    OllamaUnreachable,
    StreamError,
)
from .catalog import ModelCatalog
from .client import OllamaClient
from .models import ChatChunk, ChatRequest

DEFAULT_MAX_PARALLEL = 1
"""Chats one server runs at once: Ollama's own ``OLLAMA_NUM_PARALLEL`` default. Ollama lowered it to
1 in July 2025 (ollama/ollama#11330, "Reduce default parallelism to 1": parallelism is to be set
explicitly, no longer guessed from free memory; its FAQ gives the default as 1). More requests than
that wait in Ollama's own queue, so waiting here costs nothing and lets another server take them."""
DOWN_SECONDS = 5.0
"""How long a server that refused a connection is passed over before it is tried again."""
TAGS_TIMEOUT = 10.0
"""How long routing waits for one server's ``/api/tags`` before it goes on without it."""

OnWait = Callable[[str], Awaitable[None] | None]
"""Told once, in a sentence, that a chat waits for a free slot (a progress message, say)."""


@dataclass(frozen=True)
class HostModels:
    """One server as ``OllamaPool.where`` reports it."""

    url: str
    """The server's base URL (without credentials)."""
    models: list[str] = field(default_factory=list)
    """The models it lists (``/api/tags``); empty when it could not be asked."""
    error: str | None = None
    """Why it could not be asked, if it could not."""
    in_flight: int = 0
    """Chats it is running for this process now."""


def model_key(name: str) -> str:
    """``name`` as Ollama matches it: no tag means ``:latest``, and case does not count."""
    name = name.strip()
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name.casefold()


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
        tags_seconds: float = 30.0,
        down_seconds: float = DOWN_SECONDS,
    ) -> None:
        if not clients:
            raise ValueError("an OllamaPool needs at least one client")
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        urls = [client.base_url for client in clients]
        if len(set(urls)) != len(urls):
            raise ValueError("each Ollama server may appear only once in a pool")
        self._hosts = [_Host(client) for client in clients]
        self._max_parallel = max_parallel
        self._tags_seconds = tags_seconds
        self._down_seconds = down_seconds
        self._waiters: deque[_Waiter] = deque()
        self._catalogs = {host.url: ModelCatalog(host.client) for host in self._hosts}

    # --- the servers --------------------------------------------------------------------------

    @property
    def clients(self) -> list[OllamaClient]:
        """The clients, in the order given."""
        return [host.client for host in self._hosts]

    @property
    def several(self) -> bool:
        """Whether more than one server stands behind the pool."""
        return len(self._hosts) > 1

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    def in_flight(self) -> dict[str, int]:
        """Chats running on each server now, by URL."""
        return {host.url: host.in_flight for host in self._hosts}

    def catalog(self, url: str) -> ModelCatalog:
        """The model details cache of the server at ``url``."""
        return self._catalogs[url]

    async def aclose(self) -> None:
        """Close every client."""
        for host in self._hosts:
            await host.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def forget(self) -> None:
        """Read every server's model list again on next use (a model was pulled or removed)."""
        for host in self._hosts:
            host.due = -math.inf

    async def where(self, *, fresh: bool = False) -> dict[str, HostModels]:
        """Which server has which model, by URL, in the order given.

        Cached listings are reused unless ``fresh``; a server passed over as down is asked again
        only when ``fresh``. A server that cannot be asked appears with no models and an error.
        """
        if fresh:
            await self._refresh(self._hosts, since=time.monotonic())
        else:
            await self._refresh([h for h in self._hosts if not h.is_down()])
        found: dict[str, HostModels] = {}
        for host in self._hosts:
            error = host.error
            if host.is_down():
                error = f"unreachable ({host.down_detail})" if host.down_detail else "unreachable"
            elif host.keys is None and error is None:
                error = "not asked yet"
            models = list(host.names) if error is None else []
            found[host.url] = HostModels(host.url, models, error, host.in_flight)
        return found

    async def catalog_for(self, model: str) -> ModelCatalog:
        """The details cache of the server a chat on ``model`` would go to now.

        ``ModelNotFound`` (naming the models every server has) when no reachable server has it;
        ``OllamaUnreachable`` when none answers. With one server: that server's, at no cost.
        """
        return self._catalogs[(await self._choose(model)).url]

    async def is_loaded(self, model: str) -> bool | None:
        """Whether ``model`` is in memory on the servers running its chats now (else on those that
        have it); ``None`` when none of them could say (``/api/ps``)."""
        key = model_key(model)
        running = [h for h in self._hosts if h.running.get(key)]
        asked = running or [h for h in self._hosts if h.has(key) is not False and not h.is_down()]
        answers: list[bool] = []
        for host in asked:
            try:
                with anyio.fail_after(TAGS_TIMEOUT):
                    loaded = await host.client.loaded_models()
            except (BackendError, TimeoutError):
                continue
            answers.append(key in {model_key(name) for name in loaded})
        return any(answers) if answers else None

    async def catalog_client(self, model: str) -> OllamaClient:
        """The client of the server ``catalog_for`` picks."""
        return (await self._choose(model)).client

    # --- chats --------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, model: str, *, on_wait: OnWait | None = None) -> AsyncIterator[OllamaClient]:
        """A client for a server that has ``model``, holding one of its ``max_parallel`` slots.

        Waits (telling ``on_wait`` once) while every such server is full. No failover: for
        chats use ``chat_stream``. An ``OllamaUnreachable`` raised in the block marks that
        server down for a few seconds.
        """
        candidates = await self._route(model, tried=())
        if not candidates:
            raise self._no_server(model, [])
        host = await self._acquire(candidates, _once(on_wait))
        try:
            yield host.client
        except OllamaUnreachable as exc:
            host.mark_down(exc.detail, self._down_seconds)
            raise
        finally:
            self._release(host)

    @asynccontextmanager
    async def chat_stream(
        self, request: ChatRequest, *, on_wait: OnWait | None = None, principal: str = ""
    ) -> AsyncIterator[AsyncIterator[ChatChunk]]:
        """``OllamaClient.chat_stream`` on the best server for ``request.model``, with failover.

        Until the first chunk has arrived, a server that is down, busy (429, 5xx), has lost the
        model (404) or breaks off is left for the next server that has the model. After that
        the chat stays on its server, and its errors are the client's. The slot is held until
        the block is left. When every server failed: the last busy or broken answer, else
        ``OllamaUnreachable`` (every server tried), else ``ModelNotFound`` (with every server's
        models). With one server, its own error as it is.
        """
        notify = _once(on_wait)
        tried: list[_Host] = []
        failures: list[BackendError] = []
        while True:
            candidates = await self._route(request.model, tried=tried)
            if not candidates:
                raise self._no_server(request.model, failures)
            host = await self._acquire(candidates, notify)
            async with AsyncExitStack() as stack:
                stack.callback(self._release, host)
                key = model_key(request.model)
                host.running[key] = host.running.get(key, 0) + 1
                stack.callback(host.stopped, key)
                try:
                    chunks = await stack.enter_async_context(host.client.chat_stream(request))
                    first = await anext(chunks)
                except (OllamaUnreachable, OllamaStatusError, ModelNotFound, StreamError) as exc:
                    self._note_failure(host, request.model, exc)
                    if len(self._hosts) == 1 or not _worth_another_server(exc):
                        raise
                    tried.append(host)
                    failures.append(exc)
                    continue
                yield _Started(first, chunks)
                return

    # --- routing ------------------------------------------------------------------------------

    async def _choose(self, model: str) -> _Host:
        candidates = await self._route(model, tried=())
        if not candidates:
            raise self._no_server(model, [])
        return min(candidates, key=lambda h: h.in_flight)

    async def _route(self, model: str, *, tried: Sequence[_Host]) -> list[_Host]:
        """The servers worth trying for ``model``, in tiers: those that list it, else those whose
        list is unknown, else those already passed over as down that listed it (or are unknown);
        trying one of these is the re-probe. A server that fails to list here is left out."""
        hosts = [h for h in self._hosts if h not in tried]
        if len(self._hosts) == 1:
            return hosts
        started = time.monotonic()
        down_before = [h for h in hosts if h.is_down()]
        up = [h for h in hosts if h not in down_before]
        await self._refresh(up)
        up = [h for h in up if not h.is_down()]
        key = model_key(model)
        if up and all(h.has(key) is False for h in up):
            # Every list says no; one may be older than a pull: read them again, once.
            await self._refresh(up, since=started)
            up = [h for h in up if not h.is_down()]
        for tier in (
            [h for h in up if h.has(key)],
            [h for h in up if h.has(key) is None],
            [h for h in down_before if h.has(key) is not False],
        ):
            if tier:
                return tier
        return []

    async def _refresh(self, hosts: Sequence[_Host], *, since: float | None = None) -> None:
        """Read the model lists that are due, or (``since``) those not read since then; concurrently."""
        now = time.monotonic()
        due = [h for h in hosts if (h.asked_at < since if since is not None else h.due <= now)]
        if len(due) == 1:
            await self._list(due[0], since)
        elif due:
            async with anyio.create_task_group() as tg:
                for host in due:
                    tg.start_soon(self._list, host, since)

    async def _list(self, host: _Host, since: float | None) -> None:
        async with host.lock:  # one /api/tags per server at a time; latecomers use its answer
            if since is not None and host.asked_at >= since:
                return
            if since is None and host.due > time.monotonic():
                return
            host.asked_at = time.monotonic()
            try:
                with anyio.fail_after(TAGS_TIMEOUT):
                    models = await host.client.list_models()
            except OllamaUnreachable as exc:
                host.mark_down(exc.detail, self._down_seconds)
                host.due = host.down_until
                host.error = f"unreachable ({exc.detail})" if exc.detail else "unreachable"
                return
            except (BackendError, TimeoutError) as exc:
                # Up, but it cannot list (a proxy that hides /api/tags, say): chats may still work.
                host.due = host.asked_at + self._down_seconds
                host.error = str(exc) or f"no answer to /api/tags in {TAGS_TIMEOUT:g} s"
                return
            host.names = [m.name for m in models]
            host.keys = frozenset(model_key(name) for name in host.names)
            host.error = None
            host.down_until = -math.inf
            host.due = host.asked_at + self._tags_seconds

    def _note_failure(self, host: _Host, model: str, exc: BackendError) -> None:
        if isinstance(exc, OllamaUnreachable):
            host.mark_down(exc.detail, self._down_seconds)
        elif isinstance(exc, ModelNotFound) and host.keys is not None:
            host.keys = host.keys - {model_key(model)}  # removed since it was listed
            host.due = -math.inf

    def _no_server(self, model: str, failures: Sequence[BackendError]) -> BackendError:
        """The error for a chat no server could take (``failures``: what each one tried said)."""
        if len(self._hosts) == 1 and failures:
            return failures[-1]
        busy = [e for e in failures if not isinstance(e, OllamaUnreachable | ModelNotFound)]
        if busy:
            return busy[-1]
        unreachable = [e for e in failures if isinstance(e, OllamaUnreachable)]
        answered = [h for h in self._hosts if h.keys is not None and h.error is None and not h.is_down()]
        if unreachable or not answered:
            down = unreachable or [
                OllamaUnreachable(h.url, h.down_detail) for h in self._hosts if h.is_down()
            ]
            if not down:  # every server answered, none could list its models
                down = [OllamaUnreachable(h.url, h.error or "") for h in self._hosts]
            details = list(dict.fromkeys(e.detail for e in down if e.detail))
            detail = details[0] if len(details) == 1 else "; ".join(f"{e.url}: {e.detail}" for e in down)
            return OllamaUnreachable(", ".join(e.url for e in down), detail)
        pulled = list(dict.fromkeys(name for h in answered for name in h.names))
        return ModelNotFound(model, ", ".join(h.url for h in answered), pulled)

    # --- slots --------------------------------------------------------------------------------

    async def _acquire(self, candidates: Sequence[_Host], on_wait: OnWait) -> _Host:
        """A slot on the candidate with the fewest chats in flight, waiting for one if need be.

        Waiters are served first come, first served: a freed slot goes straight to the oldest
        waiter that can use it, so a newcomer never overtakes one.
        """
        free = [h for h in candidates if h.in_flight < self._max_parallel]
        if free:
            host = min(free, key=lambda h: h.in_flight)
            host.in_flight += 1
            return host
        waiter = _Waiter(tuple(candidates))
        self._waiters.append(waiter)
        try:
            running = sum(h.in_flight for h in candidates)
            where = " or ".join(h.shown for h in candidates)
            said = on_wait(
                f"waiting for a free slot on {where} ({running} chat{'s' if running != 1 else ''} in flight)…"
            )
            if inspect.isawaitable(said):
                await said
            await waiter.granted_event.wait()
        except BaseException:
            if waiter.granted is not None:
                self._release(waiter.granted)
            else:
                self._waiters.remove(waiter)
            raise
        assert waiter.granted is not None
        return waiter.granted

    def _release(self, host: _Host) -> None:
        host.in_flight -= 1
        for waiter in self._waiters:
            if host in waiter.candidates:
                self._waiters.remove(waiter)
                host.in_flight += 1
                waiter.granted = host
                waiter.granted_event.set()
                return


class _Host:
    """One server's client and what the pool knows of it."""

    def __init__(self, client: OllamaClient) -> None:
        self.client = client
        self.url = client.base_url
        self.shown = self.url.split("://", 1)[-1]
        self.in_flight = 0
        self.running: dict[str, int] = {}
        """Chats in flight here by ``model_key``."""
        self.down_until = -math.inf
        self.down_detail = ""
        self.names: list[str] = []
        self.keys: frozenset[str] | None = None
        """``model_key`` of each listed model; None until a list was read."""
        self.error: str | None = None
        """Why the latest ``/api/tags`` failed, if it did."""
        self.asked_at = -math.inf
        self.due = -math.inf
        self.lock = anyio.Lock()

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def stopped(self, key: str) -> None:
        """A chat on model ``key`` has left this server."""
        self.running[key] -= 1
        if not self.running[key]:
            del self.running[key]

    def mark_down(self, detail: str, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds
        self.down_detail = detail

    def has(self, key: str) -> bool | None:
        """Whether the last list read holds the model; None when no list was ever read."""
        return None if self.keys is None else key in self.keys


class _Waiter:
    def __init__(self, candidates: tuple[_Host, ...]) -> None:
        self.candidates = candidates
        self.granted: _Host | None = None
        self.granted_event = anyio.Event()


class _Started:
    """The chunks of an answer whose first chunk was read to decide on failover."""

    def __init__(self, first: ChatChunk, rest: AsyncIterator[ChatChunk]) -> None:
        self._first: ChatChunk | None = first
        self._rest = rest

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await anext(self._rest)


def _worth_another_server(exc: BackendError) -> bool:
    """Whether another server might answer where this one did not (not a 400: the request's fault)."""
    if isinstance(exc, OllamaStatusError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, OllamaUnreachable | ModelNotFound | StreamError)


def _once(on_wait: OnWait | None) -> OnWait:
    """``on_wait`` called at most once, however many times a chat waits (failover may wait again)."""
    told = False

    def tell(message: str) -> Awaitable[None] | None:
        nonlocal told
        if told or on_wait is None:
            return None
        told = True
        return on_wait(message)

    return tell
