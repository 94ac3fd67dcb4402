"""``POST /api/pull`` as Ollama 0.12 streams it, from a registry of models the fake can pull.

The lines, as ``server/images.go`` writes them (``api.ProgressResponse``, zero fields omitted):
``{"status":"pulling manifest"}``; per layer ``{"status":"pulling <12 hex>","digest":"sha256:…",
"total":N}`` then the same with ``"completed"`` growing to ``N`` (a layer already on disk: one line,
complete); ``{"status":"verifying sha256 digest"}``, ``{"status":"writing manifest"}``,
``{"status":"success"}``. A name the registry does not know is a last line
``{"error":"pull model manifest: file does not exist"}`` under status 200 (the error comes after the
stream began). ``stream: false`` answers the last line alone (an error as a 500). After
``success`` the model is in ``/api/tags``.

``PullBehavior`` scripts the next pulls: how many progress lines per layer and the pause between
them, a cut connection or an error line after N lines. A client hanging up mid-pull is counted
in ``pull_hangups``, as Ollama stops a pull whose request went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from .chat import _Chat
from .models import READY_MODELS, FakeModel
from .streaming import _ChunkedWriter
from .wire import _ClientGone, _Connection, _pause, _Request

UNKNOWN_MANIFEST = "pull model manifest: file does not exist"
NOMIC_EMBED = FakeModel(
    name="nomic-embed-text:latest",
    family="nomic-bert",
    parameter_size="137M",
    quantization_level="F16",
    size=274302450,
    digest=hashlib.sha256(b"nomic-embed-text:latest").hexdigest(),
    context_length=2048,
    capabilities=("embedding",),
)
"""nomic-embed-text: embeddings only (768 dimensions), 2048 tokens of context."""


@dataclass(frozen=True)
class PullBehavior:
    """How the next pulls go."""

    steps: int = 4
    """Progress lines for the model's big layer, after its first (``completed`` absent)."""
    step_delay: float = 0.0
    """Seconds between two progress lines."""
    cut_after: int | None = None
    """Cut the connection after this many lines (the first, "pulling manifest", is line 1)."""
    error_after: int | None = None
    """Send ``{"error": error}`` after this many lines and end the stream."""
    error: str = "max retries exceeded: unexpected EOF"


def _layers(model: FakeModel) -> list[tuple[str, int]]:
    """The model's layers (digest, size): the weights, then template, license and parameters."""
    names = ("model", "template", "license", "params")
    sizes = (max(model.size - 13_000, 1), 1_400, 11_000, 600)
    return [
        ("sha256:" + hashlib.sha256(f"{model.name}/{name}".encode()).hexdigest(), size)
        for name, size in zip(names, sizes, strict=True)
    ]


class _Pulls(_Chat):
    """``FakeOllama``'s ``POST /api/pull``: ``registry``, ``pull_behavior``, ``pull_hangups``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry: dict[str, FakeModel] = {m.name: m for m in [*READY_MODELS.values(), NOMIC_EMBED]}
        """Models the fake can pull, by full name (``name:tag``)."""
        self.pull_behavior = PullBehavior()
        self._pull_hangups = 0

    def reset(self) -> None:
        super().reset()
        with self._cond:
            self.pull_behavior = PullBehavior()
            self._pull_hangups = 0

    @property
    def pull_hangups(self) -> int:
        """Pulls whose client went away before ``success``."""
        with self._cond:
            return self._pull_hangups

    def wait_for_pull_hangup(self, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pull_hangups >= 1, timeout)

    def _registry_model(self, name: str) -> FakeModel | None:
        wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        return self.registry.get(wanted)

    async def _pull(self, conn: _Connection, request: _Request) -> bool:
        """Answer ``POST /api/pull``; False if the connection must close afterwards."""
        keep_alive = request.keep_alive
        body = request.json_object()
        if body is None:
            text = "missing request body" if not request.body.strip() else "invalid character in request body"
            await conn.send_json(400, {"error": text}, keep_alive=keep_alive)
            return True
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name.strip() or " " in name:
            await conn.send_json(400, {"error": "invalid model name"}, keep_alive=keep_alive)
            return True
        behavior = self.pull_behavior
        model = self._registry_model(name)
        lines = self._pull_lines(model, behavior)
        if body.get("stream", True) is False:  # waitForStream: the last line, an error as a 500
            last = lines[-1]
            status = 500 if "error" in last else 200
            await conn.send_json(status, last, keep_alive=keep_alive)
            if model is not None and "error" not in last:
                self._pulled(model)
            return True
        watcher = asyncio.create_task(conn.wait_for_hangup())
        stream = _ChunkedWriter(conn)
        try:
            for index, line in enumerate(lines, start=1):
                if index > 1:
                    await _pause(behavior.step_delay, watcher)
                await stream.line(line)
                if index == behavior.cut_after:
                    await conn.cut()
                    return False
            if model is not None and "error" not in lines[-1]:
                self._pulled(model)
            await stream.finish()
            return True
        except _ClientGone:
            with self._cond:
                self._pull_hangups += 1
                self._cond.notify_all()
            return False
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _pull_lines(self, model: FakeModel | None, behavior: PullBehavior) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if model is None:
            return [*lines, {"error": UNKNOWN_MANIFEST}]
        have = self._find_model(model.name) is not None
        for digest, size in _layers(model):
            status = f"pulling {digest[7:19]}"
            steps = 0 if have or size < 100_000 else behavior.steps
            if steps:
                lines.append({"status": status, "digest": digest, "total": size})
            for step in range(1, steps + 1):
                lines.append(
                    {"status": status, "digest": digest, "total": size, "completed": size * step // steps}
                )
            if not steps:
                lines.append({"status": status, "digest": digest, "total": size, "completed": size})
        lines += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        if behavior.error_after is not None:
            lines = [*lines[: behavior.error_after], {"error": behavior.error}]
        return lines

    def _pulled(self, model: FakeModel) -> None:
        with self._cond:
            if all(m.name != model.name for m in self.models):
                self.models.append(dataclasses.replace(model))
            self._cond.notify_all()
