"""``POST /api/embed`` as Ollama 0.12 answers it (``server/routes.go``, ``EmbedHandler``).

``input`` is a string (an empty one embeds nothing) or a list of strings (anything else: 400
``invalid input type``); an unknown model is a 404 ``model '<name>' not found``; the model is
loaded like a chat's (``load_delay``, ``keep_alive``). Each vector is L2-normalised and, with
``dimensions`` smaller than the model's, cut to that size and normalised again. A model without
the ``embedding`` capability is a 400 ``"<model>" does not support embeddings`` (the fake's words,
after its images one). Vectors are deterministic: the same text gives the same vector.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
from typing import Any

from .inputs import keep_alive_seconds
from .models import _DEFAULT_NUM_CTX, FakeModel
from .pulling import _Pulls
from .wire import _ClientGone, _Connection, _Request

EMBEDDING_LENGTHS = {"nomic-bert": 768, "bert": 384}
"""Vector size by model family; 1024 for any other embedding model."""


def embedding_length(model: FakeModel) -> int:
    return EMBEDDING_LENGTHS.get(model.family, 1024)


def fake_vector(text: str, size: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return _normalize([rng.uniform(-1.0, 1.0) for _ in range(size)])


def _normalize(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Embed(_Pulls):
    """``FakeOllama``'s ``POST /api/embed``."""

    async def _embed(self, conn: _Connection, request: _Request) -> bool:
        """Answer ``POST /api/embed``; False if the connection must close afterwards."""
        keep_alive = request.keep_alive
        body = request.json_object()
        if body is None:
            text = "missing request body" if not request.body.strip() else "invalid character in request body"
            await conn.send_json(400, {"error": text}, keep_alive=keep_alive)
            return True
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw] if raw else []
        elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            texts = list(raw)
        elif raw is None:
            texts = []
        else:
            await conn.send_json(400, {"error": "invalid input type"}, keep_alive=keep_alive)
            return True
        name = body.get("model")
        model = self._find_model(name) if isinstance(name, str) and name else None
        if model is None:
            await conn.send_json(404, {"error": f"model '{name}' not found"}, keep_alive=keep_alive)
            return True
        seconds = keep_alive_seconds(body.get("keep_alive"))
        if isinstance(seconds, str):
            await conn.send_json(400, {"error": seconds}, keep_alive=keep_alive)
            return True
        dimensions = body.get("dimensions") or 0
        if not isinstance(dimensions, int) or dimensions < 0:
            await conn.send_json(
                400, {"error": "dimensions must be a positive integer"}, keep_alive=keep_alive
            )
            return True
        watcher = asyncio.create_task(conn.wait_for_hangup())
        try:
            load_ns = await self._load(model.name, _DEFAULT_NUM_CTX, watcher)
        except _ClientGone:
            return False
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        with self._cond:
            epoch = self._epoch
        self._use(model.name, epoch, seconds, 0)
        if texts and "embedding" not in model.capabilities:
            await conn.send_json(
                400, {"error": f'"{name}" does not support embeddings'}, keep_alive=keep_alive
            )
            return True
        size = embedding_length(model)
        vectors = [fake_vector(text, size) for text in texts]
        if 0 < dimensions < size:
            vectors = [_normalize(vector[:dimensions]) for vector in vectors]
        answer: dict[str, Any] = {"model": name, "embeddings": vectors}
        if texts:
            tokens = sum(max(1, len(text) // 4) for text in texts)
            answer.update(total_duration=(load_ns or 0) + 1_000_000, load_duration=load_ns or 0)
            answer["prompt_eval_count"] = tokens
        await conn.send_json(200, answer, keep_alive=keep_alive)
        return True
