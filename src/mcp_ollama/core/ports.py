"""What the domain needs from the model servers, as protocols: ``backend.pool.OllamaPool`` is the
one implementation (a single Ollama server is a pool of one), and a test may bring its own.

Keeping these here lets ``core`` run a turn without importing httpx, the pool or its clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..backend.admin_models import ModelShow
from ..backend.models import ChatChunk, ChatRequest
from ..backend_errors import ModelNotFound

OnWait = Callable[[str], Awaitable[None] | None]
"""Told once, in a sentence, that a chat waits for a free slot (a progress message, say)."""


class ModelDetails(Protocol):
    """One server's cached knowledge of its models (``backend.catalog.ModelCatalog``)."""

    async def details(self, model: str) -> ModelShow | None:
        """``model``'s window and capabilities; ``None`` when the server could not say."""
        ...

    async def able(self, capability: str) -> list[str]:
        """The pulled models that have ``capability`` (``"thinking"``, ``"vision"``)."""
        ...

    async def not_found(self, model: str) -> ModelNotFound:
        """The error for a model the server does not have, naming the closest pulled one."""
        ...


class ModelBackend(Protocol):
    """Where every chat goes: routing, slots and failover are the backend's business."""

    @property
    def several(self) -> bool:
        """Whether more than one server stands behind it (its errors then name every server)."""
        ...

    async def catalog_for(self, model: str) -> ModelDetails:
        """The details cache of the server that has ``model``."""
        ...

    def chat_stream(
        self, request: ChatRequest, *, on_wait: OnWait | None = None, principal: str = ""
    ) -> AbstractAsyncContextManager[AsyncIterator[ChatChunk]]:
        """Stream ``request``'s answer from a server that has its model, once a slot is free."""
        ...

    async def is_loaded(self, model: str) -> bool | None:
        """Whether ``model`` is in memory where its chats run; ``None`` when no server could say."""
        ...
