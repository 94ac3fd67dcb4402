"""Models loading as in Ollama: ``load_delay``, ``keep_alive``, ``/api/ps`` and ``/api/show``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from .inputs import _DEFAULT_KEEP_ALIVE
from .models import FakeModel
from .state import _Loaded, _State
from .wire import _acquire, _ClientGone, _Connection, _Request


class _Loading(_State):
    """``FakeOllama``'s models: loading them (``load_delay``), keeping them loaded, describing them."""

    @property
    def load_delay(self) -> float:
        """Seconds loading a model takes: a chat request for a model that is not loaded waits
        this long, before any response header. A load in progress ends ``load_delay`` after it
        began, so changing it affects loads under way: set it high, watch a request wait, then
        set it to 0 to let the load finish at once."""
        with self._cond:
            return self._load_delay

    @load_delay.setter
    def load_delay(self, seconds: float) -> None:
        with self._cond:
            self._load_delay = seconds
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self._wake_loads)

    def _wake_loads(self) -> None:
        """Tell loads under way that ``load_delay`` changed (server thread)."""
        if self._load_delay_changed is not None:
            self._load_delay_changed.set()
        self._load_delay_changed = asyncio.Event()

    @property
    def loads(self) -> list[str]:
        """The name of each model loaded, once per load, in order (a reload counts again)."""
        with self._cond:
            return list(self._loads)

    @property
    def loaded_models(self) -> list[str]:
        """The names of the models loaded right now, as ``/api/ps`` lists them."""
        return [entry["name"] for entry in self._running()]

    def wait_for_loads(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` model loads are recorded; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._loads) >= count, timeout)

    def _find_model(self, name: str) -> FakeModel | None:
        wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        return next((m for m in self.models if m.name in (name, wanted)), None)

    def _running(self) -> list[dict[str, Any]]:
        with self._cond:
            loaded = {name: self._loaded[name] for name in list(self._loaded) if self._is_loaded(name)}
        running = []
        for model in self.models:
            if model.name in loaded:
                entry = loaded[model.name]
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.expires))
                running.append(
                    {
                        **model.tag(),
                        "expires_at": expires,
                        "size_vram": model.size,
                        "context_length": entry.num_ctx,
                    }
                )
        return running

    def _is_loaded(self, name: str, num_ctx: int | None = None) -> bool:
        """Whether ``name`` is loaded (with ``num_ctx``, if given); call with ``_cond`` held."""
        entry = self._loaded.get(name)
        if entry is None or (num_ctx is not None and entry.num_ctx != num_ctx):
            return False
        if entry.expires > time.time() or self._in_use.get(name, 0) > 0:
            return True
        del self._loaded[name]  # its keep_alive ran out while nobody used it
        return False

    async def _load(self, name: str, num_ctx: int, watcher: asyncio.Task[None]) -> int | None:
        """Load the model unless it is loaded with this context length: wait ``load_delay``,
        hang-up aware, one load of a model at a time (a request that queued behind a load of
        the same model finds it loaded). Nanoseconds waited, or None if it was loaded already."""
        with self._cond:
            if self._is_loaded(name, num_ctx):
                return None
        started = time.monotonic_ns()
        lock = self._load_locks.setdefault(name, asyncio.Lock())
        await _acquire(lock, watcher)
        try:
            with self._cond:
                loaded = self._is_loaded(name, num_ctx)
                epoch = self._epoch
            if not loaded:
                # Ollama aborts a load when the client that asked for it goes away.
                await self._wait_for_load(time.monotonic(), watcher)
                with self._cond:
                    if epoch == self._epoch:
                        self._loaded[name] = _Loaded(time.time() + _DEFAULT_KEEP_ALIVE, num_ctx)
                        self._loads.append(name)
                        self._cond.notify_all()
        finally:
            lock.release()
        return max(time.monotonic_ns() - started, 1)

    async def _wait_for_load(self, began: float, watcher: asyncio.Task[None]) -> None:
        """Sleep until ``load_delay`` after ``began`` (re-read whenever it changes), hang-up aware."""
        while True:
            changed = self._load_delay_changed
            assert changed is not None
            left = began + self.load_delay - time.monotonic()
            if left <= 0:
                break
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({watcher, waiter}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if watcher.done():
                raise _ClientGone
        if watcher.done():
            raise _ClientGone

    def _use(self, name: str, epoch: int, keep_alive: float, delta: int) -> None:
        """Count a request in (+1) or out (-1) of the model; the keep_alive clock restarts."""
        with self._cond:
            self._in_use[name] = self._in_use.get(name, 0) + delta
            entry = self._loaded.get(name)
            if entry is not None and epoch == self._epoch:
                entry.expires = time.time() + keep_alive

    @contextlib.asynccontextmanager
    async def _generation(self, name: str, watcher: asyncio.Task[None]) -> AsyncIterator[None]:
        """One chat generating with model ``name``: waits its turn under ``num_parallel`` (hang-up
        aware, unanswered meanwhile, as in Ollama) and counts itself in the peaks while it runs."""
        limit = self.num_parallel
        gate = self._parallel.setdefault((name, limit), asyncio.Semaphore(limit)) if limit else None
        if gate is not None:
            await _acquire(gate, watcher)  # type: ignore[arg-type]  # a Semaphore acquires like a Lock
        with self._cond:
            self._generating[name] = self._generating.get(name, 0) + 1
            self._peak_generating[name] = max(self._peak_generating.get(name, 0), self._generating[name])
            models = sum(1 for count in self._generating.values() if count > 0)
            self._peak_models = max(self._peak_models, models)
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._generating[name] -= 1
                self._cond.notify_all()
            if gate is not None:
                gate.release()

    async def _show(self, conn: _Connection, request: _Request, keep_alive: bool) -> None:
        body = request.json_object() or {}
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            await conn.send_json(400, {"error": "model is required"}, keep_alive=keep_alive)
            return
        model = self._find_model(name)
        if model is None:
            await conn.send_json(404, {"error": f"model '{name}' not found"}, keep_alive=keep_alive)
            return
        await conn.send_json(200, model.show(), keep_alive=keep_alive)
