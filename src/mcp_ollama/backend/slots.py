"""Slots per (server, model) and the fair queue of chats waiting for one.

Ollama runs ``OLLAMA_NUM_PARALLEL`` chats at once per loaded model (a semaphore per runner), so
a slot belongs to a server and a model: two models on one server run side by side. A chat that
finds no free slot waits in its principal's line (first come, first served), and the lines are
served round-robin, so one user's pile of chats delays another user's by at most one chat of
each other user. A principal may keep only so many chats waiting (``TooManyWaiting``).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

import anyio

from ..errors import TooManyWaiting
from .health import Server, model_key

OnWait = Callable[[str], Awaitable[None] | None]
"""Told, in a sentence, that a chat waits for a free slot (a progress message, say)."""

DEFAULT_MAX_QUEUED = 16
"""Chats one principal may have waiting for a slot at once."""


class Teller:
    """What one chat says while it waits: its first wait, then only fewer chats ahead; a busy
    server once. Failover may make a chat wait again; it is not told twice the same."""

    def __init__(self, on_wait: OnWait | None) -> None:
        self._on_wait = on_wait
        self._ahead: int | None = None
        self._busy = False

    async def waiting(self, ahead: int, message: str) -> None:
        if self._ahead is not None and ahead >= self._ahead:
            return
        self._ahead = ahead
        await self._say(message)

    async def busy(self, message: str) -> None:
        if not self._busy:
            self._busy = True
            await self._say(message)

    async def _say(self, message: str) -> None:
        if self._on_wait is not None:
            said = self._on_wait(message)
            if inspect.isawaitable(said):
                await said


class _Waiter:
    def __init__(self, principal: str, key: str, candidates: tuple[Server, ...]) -> None:
        self.principal = principal
        self.key = key
        self.candidates = candidates
        self.granted: Server | None = None
        self.changed = anyio.Event()


class Slots:
    """Who holds which slot, and who waits for one."""

    def __init__(
        self,
        default: int,
        per_model: Mapping[str, int],
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        if default < 1 or any(n < 1 for n in per_model.values()):
            raise ValueError("max_parallel must be at least 1")
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.default = default
        self._limits = {model_key(name): n for name, n in per_model.items()}
        self.max_queued = max_queued
        self._lines: dict[str, deque[_Waiter]] = {}
        self._turns: deque[str] = deque()
        """Principals with chats waiting, in the order their next chat is served."""

    def limit(self, key: str) -> int:
        """Slots per server for the model ``key``."""
        return self._limits.get(key, self.default)

    def free(self, server: Server, key: str) -> bool:
        return server.running.get(key, 0) < self.limit(key)

    def rank(self, server: Server, key: str) -> tuple[bool, bool, bool, int, float]:
        """Sort key of ``server`` for a chat on model ``key``, smaller is better: healthy, a free
        slot, the model in memory, fewer chats in flight, a shorter time to first token (unknown
        counts as fast, so that a new server gets tried)."""
        return (
            not server.health.healthy(),
            not self.free(server, key),
            not server.loaded(key),
            server.in_flight,
            server.ttft or 0.0,
        )

    def queued(self) -> dict[str, int]:
        """Chats waiting for a slot, by principal."""
        return {principal: len(line) for principal, line in self._lines.items()}

    async def acquire(
        self,
        candidates: Sequence[Server],
        key: str,
        principal: str,
        teller: Teller,
        *,
        again: bool = False,
    ) -> Server:
        """A slot for model ``key`` on the best free candidate, once it is this chat's turn.

        ``again``: the chat already had a slot and failed over; it goes first in its line and
        does not count against the cap.
        """
        waiter = _Waiter(principal, key, tuple(candidates))
        line = self._lines.setdefault(principal, deque())
        if not line:
            self._turns.append(principal)
        if again:
            line.appendleft(waiter)
        else:
            line.append(waiter)
        self._dispatch()
        if waiter.granted is not None:
            return waiter.granted
        if not again and len(line) > self.max_queued:
            self._forget(waiter)
            raise TooManyWaiting(self.max_queued)
        try:
            while True:
                waiter.changed = anyio.Event()
                if waiter.granted is not None:
                    break
                ahead = self._ahead(waiter)
                await teller.waiting(ahead, self._message(waiter, ahead))
                if waiter.granted is not None:
                    break
                await waiter.changed.wait()
        except BaseException:
            if waiter.granted is not None:
                self.release(waiter.granted, key)
            else:
                self._forget(waiter)
            raise
        return waiter.granted

    def take(self, server: Server, key: str) -> None:
        server.running[key] = server.running.get(key, 0) + 1

    def release(self, server: Server, key: str) -> None:
        """Give a slot back; the next waiter in turn that can use it gets it at once."""
        server.running[key] -= 1
        if not server.running[key]:
            del server.running[key]
        self._dispatch()

    def poke(self) -> None:
        """Look for waiters to serve again (a server's health changed)."""
        self._dispatch()

    # --- the queue ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Grant every free slot to the first principal in turn with a chat that can use it."""
        granted = False
        while (found := self._next_grant()) is not None:
            principal, waiter, server = found
            self._forget(waiter)
            self.take(server, waiter.key)
            waiter.granted = server
            waiter.changed.set()
            if principal in self._lines:  # served: to the back of the round
                self._turns.remove(principal)
                self._turns.append(principal)
            granted = True
        if granted:
            for line in self._lines.values():
                for other in line:
                    other.changed.set()  # fewer ahead, maybe

    def _next_grant(self) -> tuple[str, _Waiter, Server] | None:
        """The first principal in turn with a chat a free slot can serve (its oldest such chat)."""
        for principal in self._turns:
            for waiter in self._lines[principal]:
                server = self._pick(waiter)
                if server is not None:
                    return principal, waiter, server
        return None

    def _pick(self, waiter: _Waiter) -> Server | None:
        """The best free candidate; a server set aside only if every candidate is."""
        healthy = [s for s in waiter.candidates if s.health.healthy()]
        free = [s for s in healthy or waiter.candidates if self.free(s, waiter.key)]
        return min(free, key=lambda s: self.rank(s, waiter.key)) if free else None

    def _forget(self, waiter: _Waiter) -> None:
        line = self._lines[waiter.principal]
        line.remove(waiter)
        if not line:
            del self._lines[waiter.principal]
            self._turns.remove(waiter.principal)

    def _ahead(self, waiter: _Waiter) -> int:
        """Chats that will get a slot this one could use before it, the round-robin played out."""
        mine = set(waiter.candidates)
        rivals = {
            principal: [w for w in line if w.key == waiter.key and mine.intersection(w.candidates)]
            for principal, line in self._lines.items()
        }
        rounds = rivals[waiter.principal].index(waiter)
        ahead = rounds
        before = True
        for principal in self._turns:
            if principal == waiter.principal:
                before = False
                continue
            ahead += min(len(rivals[principal]), rounds + (1 if before else 0))
        return ahead

    def _message(self, waiter: _Waiter, ahead: int) -> str:
        where = " or ".join(s.shown for s in waiter.candidates)
        if ahead:
            return f"waiting for a free slot on {where}: {ahead} chat{_s(ahead)} ahead…"
        running = sum(s.running.get(waiter.key, 0) for s in waiter.candidates)
        return f"waiting for a free slot on {where} ({running} chat{_s(running)} in flight)…"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
