"""What a ``FakeOllama`` holds: its constructor, the records' types and the loaded models' state."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .behavior import Behavior
from .models import FakeModel, Truncation

VERSION = "0.12.6"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    body: dict[str, Any] | None
    """The JSON body if it was a JSON object, else None."""
    connection: int = 0
    """Which TCP connection carried it (1 for the first accepted): shows keep-alive at work."""
    headers: dict[str, str] = field(default_factory=dict)
    """The request's headers, names in lower case."""


@dataclass
class _Loaded:
    """A loaded model: when its keep_alive runs out (wall clock), and its context length."""

    expires: float
    num_ctx: int


class _State:
    """The state every part of ``FakeOllama`` shares, all of it guarded by ``_cond``."""

    def __init__(
        self,
        *,
        port: int = 0,
        models: Sequence[FakeModel] | None = None,
        reply: str | None = None,
        token_delay: float = 0.0,
        load_delay: float = 0.0,
        version: str = VERSION,
        tokenizer: bool = True,
        num_parallel: int | None = None,
    ) -> None:
        self.models: list[FakeModel] = list(models) if models is not None else [FakeModel()]
        self.version = version
        self.tokenizer = tokenizer
        """Count prompt tokens as the model's tokenizer would and truncate at ``num_ctx``
        (see the class docstring); read at each chat request."""
        self._initial_tokenizer = tokenizer
        self._truncations: list[Truncation] = []
        self.default = Behavior(reply=reply, token_delay=token_delay)
        self._load_delay = load_delay
        self._initial_load_delay = load_delay
        self._load_delay_changed: asyncio.Event | None = None  # server-thread only
        self._initial_default = dataclasses.replace(self.default)
        self._requested_port = port
        self._port: int | None = None
        self._cond = threading.Condition()
        self._queue: deque[Behavior] = deque()
        self._requests: list[RecordedRequest] = []
        self._hangups = 0
        self._active = 0
        self._connections = 0
        self._connections_at_reset = 0
        self._epoch = 0  # bumped by reset(): late events of earlier tests are not recorded
        self._loaded: dict[str, _Loaded] = {}
        self._loads: list[str] = []
        self._in_use: dict[str, int] = {}  # chat requests using each model now (not reset)
        self.num_parallel = num_parallel
        """Chats one model generates at once, as ``OLLAMA_NUM_PARALLEL`` (a semaphore per loaded
        model): more wait their turn, unanswered; None: no limit. Read at each chat request."""
        self._parallel: dict[tuple[str, int], asyncio.Semaphore] = {}  # server-thread only
        self._generating: dict[str, int] = {}  # chats generating with each model now
        self._peak_generating: dict[str, int] = {}  # the most at once, by model (reset clears)
        self._peak_models = 0  # the most models generating at once (reset clears)
        self._load_locks: dict[str, asyncio.Lock] = {}  # server-thread only
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
