"""One server's part of a pull (``ServerPull``: each layer's bytes, the step it has reached), model
names as a pull takes them, and sizes as Ollama shows them. Plain data; ``core.pulls`` runs pulls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..backend.admin_models import PullProgress
from ..errors import InputError, McpOllamaError
from .text import human_bytes

STEPS = 3
"""Progress units after the download: verifying, writing the manifest, done."""


def check_model_name(model: str) -> str:
    """``model`` as Ollama should receive it; ``InputError`` for a name it could not be."""
    name = model.strip()
    if not name or len(name) > 200 or any(c.isspace() or not c.isprintable() for c in name):
        raise InputError(
            "The model name must be 1-200 characters with no spaces, such as 'llama3.1:8b' or "
            "'nomic-embed-text' (https://ollama.com/library lists them)."
        )
    return name


@dataclass
class ServerPull:
    """One server's part of a pull: each layer's bytes, and the step it has reached."""

    url: str
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Digest -> (bytes downloaded, bytes in all)."""
    step: int = 0
    """0 downloading, 1 verifying, 2 writing the manifest, 3 done."""
    status: str = "waiting to start"
    error: McpOllamaError | None = None

    @property
    def done(self) -> bool:
        return self.step >= STEPS

    @property
    def size(self) -> int | None:
        """The model's bytes on this server, once Ollama has named its layers."""
        return sum(total for _, total in self.layers.values()) if self.layers else None

    @property
    def downloaded(self) -> int:
        return sum(done for done, _ in self.layers.values())

    @property
    def completed(self) -> int:
        return self.downloaded + self.step

    @property
    def total(self) -> int | None:
        return sum(total for _, total in self.layers.values()) + STEPS if self.layers else None

    def update(self, line: PullProgress) -> None:
        """Take in one line of Ollama's pull stream."""
        status = line.status.strip()
        if line.digest and line.total:
            done = min(line.completed or 0, line.total)
            before = self.layers.get(line.digest, (0, 0))[0]
            self.layers[line.digest] = (max(done, before), line.total)
        if status == "success":
            self.step = STEPS
        elif "writing manifest" in status or status.startswith("removing"):
            self.step = max(self.step, 2)
        elif status.startswith("verifying"):
            self.step = max(self.step, 1)
        self.status = status

    def describe(self) -> str:
        """Where this server's pull stands, in a few words: ``pulling 4.7 GB: 38 %``."""
        if self.error is not None:
            return "failed"
        if self.done:
            return "done"
        if self.step == 1:
            return "verifying"
        if self.step == 2:
            return self.status if self.status.startswith("removing") else "writing manifest"
        if not self.layers:
            return self.status
        size = sum(total for _, total in self.layers.values())
        done = sum(done for done, _ in self.layers.values())
        return f"pulling {human_bytes(size)}: {math.floor(done * 100 / size) if size else 0} %"
