"""``ModelCatalog``: what each model is (its window, its capabilities), read once from ``/api/show``.

Details are cached per model name for the life of the process, fetched once even when many chats
ask at the same moment. The list of pulled models (``/api/tags``) is cached briefly: it names
the models in errors ("did you mean llama3:8b?") and finds the models that can think or see.
"""

from __future__ import annotations

import logging
import time

import anyio

from ..backend_errors import ModelNotFound, OllamaStatusError, OllamaUnreachable
from ..errors import BackendError
from .admin_models import ModelInfo, ModelShow
from .client import OllamaClient

logger = logging.getLogger(__name__)

TAGS_SECONDS = 10.0
"""How long a listing of the pulled models is reused."""
SHOW_SECONDS = 30.0
"""How long a chat waits for a model's details before it goes on without them."""
_MAX_MODELS = 512


class ModelCatalog:
    """Model details and the pulled models of one Ollama server, cached."""

    def __init__(self, client: OllamaClient) -> None:
        self._client = client
        self._shown: dict[str, ModelShow] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._tags: tuple[float, list[ModelInfo]] | None = None

    @property
    def url(self) -> str:
        return self._client.base_url

    def cached(self, model: str) -> ModelShow | None:
        """The details already read for ``model``, without asking Ollama."""
        return self._shown.get(model)

    async def show(self, model: str) -> ModelShow:
        """``model``'s details; ``ModelNotFound`` (naming the pulled models) if it is not pulled."""
        found = self._shown.get(model)
        if found is not None:
            return found
        lock = self._locks.setdefault(model, anyio.Lock())
        async with lock:
            found = self._shown.get(model)
            if found is not None:
                return found
            try:
                found = await self._client.show(model)
            except ModelNotFound:
                raise await self.not_found(model) from None
            finally:
                self._locks.pop(model, None)
            if len(self._shown) >= _MAX_MODELS:
                self._shown.pop(next(iter(self._shown)))
            self._shown[model] = found
            return found

    async def details(self, model: str) -> ModelShow | None:
        """``show``, but None when Ollama cannot tell (an old version, a proxy that hides it).

        ``ModelNotFound`` and ``OllamaUnreachable`` still raise: a chat could not succeed either.
        """
        try:
            with anyio.fail_after(SHOW_SECONDS):
                return await self.show(model)
        except (ModelNotFound, OllamaUnreachable):
            raise
        except (BackendError, TimeoutError) as exc:
            logger.info("no details for %s from /api/show: %s", model, exc or "it did not answer in time")
            return None

    def forget(self, model: str) -> None:
        """Drop what is known of ``model`` (it was removed, or pulled anew)."""
        self._shown.pop(model, None)
        self._tags = None

    async def pulled(self, *, fresh: bool = False) -> list[ModelInfo]:
        """The pulled models (``/api/tags``), reused for ``TAGS_SECONDS`` unless ``fresh``."""
        now = time.monotonic()
        if not fresh and self._tags is not None and now - self._tags[0] < TAGS_SECONDS:
            return self._tags[1]
        models = await self._client.list_models()
        self._tags = (now, models)
        return models

    async def not_found(self, model: str) -> ModelNotFound:
        """The error for a model that is not pulled, naming those that are (when Ollama says)."""
        self.forget(model)
        try:
            names: list[str] | None = [m.name for m in await self.pulled(fresh=True)]
        except BackendError:
            names = None
        return ModelNotFound(model, self.url, names)

    async def able(self, capability: str) -> list[str]:
        """The pulled models whose capabilities include ``capability`` (best effort)."""
        try:
            names = [m.name for m in await self.pulled()]
        except BackendError:
            return []
        found: dict[str, bool] = {}

        async def probe(name: str) -> None:
            try:
                found[name] = capability in (await self.show(name)).capabilities
            except (BackendError, OllamaStatusError):
                found[name] = False

        with anyio.move_on_after(10):
            async with anyio.create_task_group() as tg:
                for name in names[:64]:
                    tg.start_soon(probe, name)
        return [name for name in names if found.get(name)]
