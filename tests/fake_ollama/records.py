"""Scripting a ``FakeOllama`` (``enqueue``, ``reset``) and reading what it recorded."""

from __future__ import annotations

import dataclasses
from typing import Any

from .behavior import Behavior
from .loading import _Loading
from .models import LLAMA3, Truncation, count_prompt_tokens
from .state import RecordedRequest


class _Records(_Loading):
    """``FakeOllama``'s scripting (``enqueue``, ``reset``) and records; every method is thread-safe."""

    def enqueue(self, *behaviors: Behavior) -> None:
        """Script the next chat requests, one behaviour each, in order."""
        with self._cond:
            self._queue.extend(behaviors)

    def reset(self) -> None:
        """Forget records (truncations included) and scripted behaviours, unload every model;
        restore the constructor's default behaviour, load delay and ``tokenizer``."""
        with self._cond:
            self._epoch += 1
            self._queue.clear()
            self._requests.clear()
            self._truncations.clear()
            self.tokenizer = self._initial_tokenizer
            self._hangups = 0
            self._connections_at_reset = self._connections
            self._loaded.clear()
            self._loads.clear()
            self._peak_generating.clear()
            self._peak_models = 0
            self.default = dataclasses.replace(self._initial_default)
            self._cond.notify_all()
        self.load_delay = self._initial_load_delay

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``POST /api/chat``, in arrival order, preloads and unloads
        (no ``messages``) included."""
        with self._cond:
            return [
                r.body
                for r in self._requests
                if r.method == "POST" and r.path == "/api/chat" and r.body is not None
            ]

    @property
    def truncations(self) -> list[Truncation]:
        """Every chat whose oldest messages were dropped to fit ``num_ctx`` (``tokenizer`` mode
        only), in order; ``reset()`` clears them."""
        with self._cond:
            return list(self._truncations)

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """Prompt tokens of a chat request body before any truncation: ``count_prompt_tokens`` of
        its messages for the model it names (``LLAMA3``'s tokenizer if the fake has no such model)."""
        name = body.get("model")
        model = (self._find_model(name) if isinstance(name, str) else None) or LLAMA3
        return count_prompt_tokens(body.get("messages") or [], model)

    @property
    def hangups(self) -> int:
        """Chat requests whose client went away before the answer was complete."""
        with self._cond:
            return self._hangups

    @property
    def active_streams(self) -> int:
        """Chat requests being answered right now."""
        with self._cond:
            return self._active

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (or since the last reset)."""
        with self._cond:
            return self._connections - self._connections_at_reset

    @property
    def peak_generating(self) -> dict[str, int]:
        """The most chats that generated with each model at once (since start or ``reset``)."""
        with self._cond:
            return dict(self._peak_generating)

    @property
    def peak_models(self) -> int:
        """The most models that generated at once (since start or ``reset``)."""
        with self._cond:
            return self._peak_models

    def generating(self) -> dict[str, int]:
        """Chats generating with each model right now (those waiting under ``num_parallel`` not counted)."""
        with self._cond:
            return {name: count for name, count in self._generating.items() if count}

    def wait_for_hangup(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Block until at least ``count`` hang-ups are recorded; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._hangups >= count, timeout)

    def wait_for_active(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` chat requests are being answered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active >= count, timeout)

    def wait_for_idle(self, timeout: float = 5.0) -> bool:
        """Block until no chat request is being answered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)
