"""Which servers a chat on a model may go to (``Router``), and what to say when none can take it.

Servers that list the model come first, then those whose list is unknown; a server set aside is
left out until its back-off is over and a probe passes, unless no other server is left (then the
probe is tried at once). Among those, ``Slots.rank`` orders them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import anyio

from ..backend_errors import ModelNotFound, OllamaUnreachable
from ..errors import BackendError
from .catalog import ModelCatalog
from .health import Server, Tuning, model_key
from .slots import Slots


@dataclass(frozen=True)
class HostModels:
    """One server as ``OllamaPool.where`` reports it."""

    url: str
    """The server's base URL (without credentials)."""
    models: list[str] = field(default_factory=list)
    """The models it lists (``/api/tags``); empty when it could not be asked."""
    error: str | None = None
    """Why it could not be asked, or why it is set aside."""
    in_flight: int = 0
    """Chats it is running for this process now."""


class Router:
    """The pool's servers, their model lists and health, as routing reads them."""

    def __init__(self, servers: Sequence[Server], slots: Slots, tuning: Tuning) -> None:
        self.servers = list(servers)
        self._slots = slots
        self._tuning = tuning

    async def choose(self, model: str, catalogs: Mapping[str, ModelCatalog]) -> Server:
        """The server a chat on ``model`` would go to now (no slot taken), for its details.

        With several servers, one whose catalog (``catalogs``, by URL) already holds the model's
        details comes first; else the best is asked for them now (so the caller's read is cached),
        and one that does not answer is set aside and the next one asked.
        """
        if len(self.servers) == 1:
            return self.servers[0]
        key = model_key(model)
        tried: list[Server] = []
        failures: list[BackendError] = []
        while candidates := await self.route(model, tried=tried):
            ranked = sorted(candidates, key=lambda s: self._slots.rank(s, key))
            known = [s for s in ranked if catalogs[s.url].cached(model) is not None]
            if known:
                return known[0]
            try:
                await catalogs[ranked[0].url].details(model)
            except OllamaUnreachable as exc:
                ranked[0].fail(exc)
                tried.append(ranked[0])
                failures.append(exc)
                continue
            except BackendError:
                pass  # not pulled there after all, say: the caller's own read says so
            return ranked[0]
        raise self.no_server(model, failures)

    async def is_loaded(self, model: str) -> bool | None:
        """See ``OllamaPool.is_loaded``."""
        key = model_key(model)
        running = [s for s in self.servers if s.running.get(key)]
        asked = running or [s for s in self.servers if s.has(key) is not False and s.health.healthy()]
        answers: list[bool] = []
        for server in asked:
            if await server.read_in_memory(judge=False) and server.in_memory is not None:
                answers.append(key in server.in_memory)
        return any(answers) if answers else None

    async def route(self, model: str, *, tried: Sequence[Server]) -> list[Server]:
        """The servers worth trying for ``model``, in tiers: healthy ones that list it, else healthy
        ones whose list is unknown, else those set aside that may have it, if they pass a probe now."""
        servers = [s for s in self.servers if s not in tried]
        if len(self.servers) == 1:
            return servers
        started = time.monotonic()
        key = model_key(model)
        set_aside = [s for s in servers if not s.health.healthy()]
        usable, probed = await self.usable(servers)
        await self.refresh(usable)
        usable = [s for s in usable if s.health.healthy()]
        if usable and all(s.has(key) is False for s in usable):
            # Every list says no; one may be older than a pull: read them again, once.
            await self.refresh(usable, since=started)
            usable = [s for s in usable if s.health.healthy()]
        for tier in ([s for s in usable if s.has(key)], [s for s in usable if s.has(key) is None]):
            if tier:
                return tier
        resting = [s for s in set_aside if s not in probed and s.has(key) is not False]
        if not resting:
            return []
        revived, _ = await self.usable(resting, force=True)
        await self.refresh(revived)
        return [s for s in revived if s.health.healthy() and s.has(key) is not False]

    async def usable(
        self, servers: Sequence[Server], *, force: bool = False
    ) -> tuple[list[Server], list[Server]]:
        """The healthy ``servers`` once those set aside whose back-off is over (all, with ``force``)
        were probed; and the ones probed."""
        probed = [s for s in servers if not s.health.healthy() and (force or s.health.due())]
        if probed:
            async with anyio.create_task_group() as tg:
                for server in probed:
                    tg.start_soon(partial(server.probe, force=force))
            self._slots.poke()
        return [s for s in servers if s.health.healthy()], probed

    async def refresh(self, servers: Sequence[Server], *, since: float | None = None) -> None:
        """Read the model lists that are due, or (``since``) those not read since then; concurrently."""
        now = time.monotonic()
        due = [s for s in servers if (s.asked_at < since if since is not None else s.due <= now)]
        if len(due) == 1:
            await due[0].read_models(since)
        elif due:
            async with anyio.create_task_group() as tg:
                for server in due:
                    tg.start_soon(server.read_models, since)

    async def read_load_state(self, candidates: Sequence[Server], key: str) -> None:
        """Ask ``/api/ps`` where it decides the choice: two or more healthy servers with a free slot."""
        free = [s for s in candidates if s.health.healthy() and self._slots.free(s, key)]
        now = time.monotonic()
        ps_seconds = self._tuning.ps_seconds
        stale = [s for s in free if not s.running.get(key) and s.in_memory_at + ps_seconds <= now]
        if len(free) > 1 and stale:
            async with anyio.create_task_group() as tg:
                for server in stale:
                    tg.start_soon(server.read_in_memory)

    async def where(self, *, fresh: bool = False) -> dict[str, HostModels]:
        """Which server has which model, by URL (see ``OllamaPool.where``)."""
        if fresh:
            await self.usable(self.servers, force=True)
            await self.refresh(self.servers, since=time.monotonic())
        else:
            await self.refresh([s for s in self.servers if s.health.healthy()])
        found: dict[str, HostModels] = {}
        for server in self.servers:
            error = server.error if server.health.healthy() else server.health.describe()
            if server.keys is None and error is None:
                error = "not asked yet"
            models = list(server.names) if error is None else []
            found[server.url] = HostModels(server.url, models, error, server.in_flight)
        return found

    def no_server(self, model: str, failures: Sequence[BackendError]) -> BackendError:
        """The error for a chat no server could take (``failures``: what each one tried said)."""
        if len(self.servers) == 1 and failures:
            return failures[-1]
        busy = [e for e in failures if not isinstance(e, OllamaUnreachable | ModelNotFound)]
        if busy:
            return busy[-1]
        unreachable = [e for e in failures if isinstance(e, OllamaUnreachable)]
        answered = [s for s in self.servers if s.keys is not None and s.error is None and s.health.healthy()]
        if unreachable or not answered:
            down = unreachable or [
                OllamaUnreachable(s.url, s.health.detail) for s in self.servers if not s.health.healthy()
            ]
            if not down:  # every server answered, none could list its models
                down = [OllamaUnreachable(s.url, s.error or "") for s in self.servers]
            details = list(dict.fromkeys(e.detail for e in down if e.detail))
            detail = details[0] if len(details) == 1 else "; ".join(f"{e.url}: {e.detail}" for e in down)
            return OllamaUnreachable(", ".join(e.url for e in down), detail)
        pulled = list(dict.fromkeys(name for s in answered for name in s.names))
        return ModelNotFound(model, ", ".join(s.url for s in answered), pulled)
