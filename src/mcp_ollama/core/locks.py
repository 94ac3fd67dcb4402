"""Turns of one session run one at a time within a process (across processes: the store's lease)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass
class SessionLocks:
    """One lock per session id, dropped again when nobody holds or waits for it."""

    _locks: dict[str, tuple[anyio.Lock, int]] = field(default_factory=dict)

    def busy(self, session_id: str) -> bool:
        """Whether a turn of ``session_id`` is running (or waiting) now."""
        return session_id in self._locks

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(session_id, (anyio.Lock(), 0))
        self._locks[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session_id]
            if users == 1:
                del self._locks[session_id]
            else:
                self._locks[session_id] = (lock, users - 1)
