"""What ``OllamaPool`` knows of each server, judged by how it behaved: health, speed, load state.

A server that refused a connection, timed out (no answer, no first token, a hung listing) or broke
a stream is set aside for a back-off that doubles with each failure in a row (``Tuning``); once it
ends, a cheap probe (``GET /api/version``) must pass before chats go there again. A complete answer
clears the record. Each server also keeps its model list (``/api/tags``), what it holds in memory
(``/api/ps``, cached briefly), its chats in flight by model, and the time to its first token (an
exponentially weighted average).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import httpx

from ..backend_errors import ModelNotFound, OllamaStatusError, OllamaTimeout, OllamaUnreachable, StreamError
from ..errors import BackendError
from .client import OllamaClient


class Trouble(enum.Enum):
    """Why a server was set aside; each kind has its own back-off."""

    REFUSED = "unreachable"
    TIMEOUT = "not answering"
    BROKEN = "broke an answer"


@dataclass(frozen=True)
class Tuning:
    """The pool's clocks, in seconds. The defaults suit a team server; tests shrink them."""

    refused_backoff: tuple[float, float] = (5.0, 60.0)
    """A server that refused a connection: set aside this long first, doubling up to the second."""
    timeout_backoff: tuple[float, float] = (15.0, 120.0)
    """A server that hung (connect or read timeout, no first token in time)."""
    broken_backoff: tuple[float, float] = (5.0, 60.0)
    """A server that broke an answer stream (cut, error line, malformed line)."""
    probe_timeout: float = 3.0
    """How long the probe (``/api/version``) and a load-state check (``/api/ps``) may take."""
    list_timeout: float = 5.0
    """How long routing waits for one server's ``/api/tags``; past it the server counts as hung."""
    tags_seconds: float = 30.0
    """How long a model list is reused before it is read again."""
    ps_seconds: float = 5.0
    """How long a server's list of loaded models is reused when choosing between servers."""
    busy_wait: float = 60.0
    """How long a chat keeps retrying servers that answer 429/503 (busy) before it gives up."""
    busy_delay: tuple[float, float] = (1.0, 8.0)
    """The first pause between busy retries, doubling up to the second."""
    ttft_weight: float = 0.3
    """Weight of the newest time-to-first-token in its running average."""

    def backoff(self, trouble: Trouble) -> tuple[float, float]:
        if trouble is Trouble.REFUSED:
            return self.refused_backoff
        return self.timeout_backoff if trouble is Trouble.TIMEOUT else self.broken_backoff


def trouble_of(exc: BaseException) -> Trouble | None:
    """The kind of failure ``exc`` shows about its server; None when it says nothing about it
    (an error status: the server answered)."""
    if isinstance(exc, OllamaUnreachable):
        timed_out = isinstance(exc.__cause__, httpx.ConnectTimeout)
        return Trouble.TIMEOUT if timed_out else Trouble.REFUSED
    if isinstance(exc, OllamaTimeout | TimeoutError):
        return Trouble.TIMEOUT
    if isinstance(exc, StreamError):
        return Trouble.BROKEN
    return None


class Health:
    """One server's record: failures in a row and how long it stays set aside."""

    def __init__(self, tuning: Tuning) -> None:
        self._tuning = tuning
        self.failures = 0
        """Failures since the last complete answer (probes passed do not clear them)."""
        self.trouble: Trouble | None = None
        self.detail = ""
        """What the last failure said (``OllamaUnreachable.detail`` and the like)."""
        self.until = -math.inf
        """Set aside until then (monotonic); ``-inf`` when chats may go there."""

    def healthy(self) -> bool:
        """Whether chats may go there now (not set aside, or its probe passed since)."""
        return self.until == -math.inf

    def resting(self, now: float | None = None) -> bool:
        """Set aside and its back-off still running."""
        return (time.monotonic() if now is None else now) < self.until

    def due(self, now: float | None = None) -> bool:
        """Set aside, back-off over: a probe decides."""
        return not self.healthy() and not self.resting(now)

    def fail(self, trouble: Trouble, detail: str = "", now: float | None = None) -> float:
        """Set the server aside for the next back-off; returns its length in seconds."""
        first, most = self._tuning.backoff(trouble)
        self.failures += 1
        seconds = min(first * 2.0 ** min(self.failures - 1, 30), most)
        self.until = (time.monotonic() if now is None else now) + seconds
        self.trouble = trouble
        self.detail = detail
        return seconds

    def probe_passed(self) -> None:
        """It answered a probe: chats may go there again; one more failure backs off longer."""
        self.until = -math.inf

    def succeeded(self) -> None:
        """A complete answer: the record is clean."""
        self.failures = 0
        self.until = -math.inf
        self.trouble = None
        self.detail = ""

    def describe(self) -> str:
        """Why it is set aside, in a few words: ``unreachable (connection refused)``."""
        kind = self.trouble.value if self.trouble else "set aside"
        return f"{kind} ({self.detail})" if self.detail else kind


def model_key(name: str) -> str:
    """``name`` as Ollama matches it: no tag means ``:latest``, and case does not count."""
    name = name.strip()
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name.casefold()


class Server:
    """One server's client and what the pool knows of it."""

    def __init__(self, client: OllamaClient, tuning: Tuning) -> None:
        self.client = client
        self.url = client.base_url
        self.shown = self.url.split("://", 1)[-1]
        self.tuning = tuning
        self.health = Health(tuning)
        self.running: dict[str, int] = {}
        """Slots taken here by ``model_key``: chats (and ``slot`` users) in flight."""
        self.ttft: float | None = None
        """Seconds to the first token, averaged; None until a chat got one here."""
        self.names: list[str] = []
        self.keys: frozenset[str] | None = None
        """``model_key`` of each listed model; None until a list was read."""
        self.error: str | None = None
        """Why the latest ``/api/tags`` failed, if it did."""
        self.asked_at = -math.inf
        self.due = -math.inf
        self.lock = anyio.Lock()
        """One ``/api/tags`` or probe at a time; latecomers use its answer."""
        self.in_memory: frozenset[str] | None = None
        """``model_key`` of each model ``/api/ps`` listed; None when it could not say."""
        self.in_memory_at = -math.inf

    @property
    def in_flight(self) -> int:
        return sum(self.running.values())

    def has(self, key: str) -> bool | None:
        """Whether the last list read holds the model; None when no list was ever read."""
        return None if self.keys is None else key in self.keys

    def loaded(self, key: str) -> bool:
        """Whether the model is in memory here, as far as anyone can tell now."""
        if self.running.get(key):
            return True
        fresh = self.in_memory_at + self.tuning.ps_seconds > time.monotonic()
        return fresh and self.in_memory is not None and key in self.in_memory

    def note_in_memory(self, names: Iterable[str] | None) -> None:
        self.in_memory = None if names is None else frozenset(model_key(name) for name in names)
        self.in_memory_at = time.monotonic()

    def note_ttft(self, seconds: float) -> None:
        weight = self.tuning.ttft_weight
        self.ttft = seconds if self.ttft is None else weight * seconds + (1 - weight) * self.ttft

    def fail(self, exc: BaseException) -> None:
        """Set the server aside if ``exc`` shows it misbehaving; forget a model it no longer has."""
        if isinstance(exc, ModelNotFound) and self.keys is not None:
            self.keys = self.keys - {model_key(exc.model)}  # removed since it was listed
            self.due = -math.inf
        trouble = trouble_of(exc)
        if trouble is not None:
            detail = getattr(exc, "detail", "") or str(exc) or type(exc).__name__
            if isinstance(exc, OllamaTimeout):
                detail = f"nothing for {exc.seconds:g} s"
            elif isinstance(exc, TimeoutError):
                detail = "timed out"
            self.health.fail(trouble, detail)

    async def probe(self, *, force: bool = False) -> bool:
        """Whether chats may go here: healthy, or set aside and answering ``/api/version`` now.

        A server still in its back-off is not asked unless ``force`` (no other server is left).
        """
        async with self.lock:
            if self.health.healthy():
                return True
            if self.health.resting() and not force:
                return False
            try:
                with anyio.fail_after(self.tuning.probe_timeout):
                    await self.client.version()
            except OllamaStatusError as exc:
                if exc.status >= 500:  # a proxy whose Ollama is gone, or Ollama failing
                    self.health.fail(Trouble.REFUSED, f"HTTP {exc.status}")
                    return False
                # It answers (a proxy may hide /api/version): good enough.
            except (BackendError, TimeoutError) as exc:
                self.health.fail(
                    trouble_of(exc) or Trouble.REFUSED, getattr(exc, "detail", "") or "no answer"
                )
                return False
            self.health.probe_passed()
            return True

    async def read_models(self, since: float | None) -> None:
        """Read ``/api/tags`` if due (or, with ``since``, unless read since then)."""
        async with self.lock:  # one /api/tags per server at a time; latecomers use its answer
            if since is not None and self.asked_at >= since:
                return
            if since is None and self.due > time.monotonic():
                return
            self.asked_at = time.monotonic()
            try:
                with anyio.fail_after(self.tuning.list_timeout):
                    models = await self.client.list_models()
            except (OllamaUnreachable, TimeoutError) as exc:
                self.fail(exc)
                self.due = self.health.until
                self.error = self.health.describe()
                return
            except BackendError as exc:
                # Up, but it cannot list (a proxy that hides /api/tags, say): chats may still work.
                self.due = self.asked_at + self.tuning.refused_backoff[0]
                self.error = str(exc)
                return
            self.names = [m.name for m in models]
            self.keys = frozenset(model_key(name) for name in self.names)
            self.error = None
            self.due = self.asked_at + self.tuning.tags_seconds

    async def read_in_memory(self, *, judge: bool = True) -> bool | None:
        """Ask ``/api/ps`` now. False: it did not answer (then, if ``judge``, the server is set
        aside: it hangs or is gone); None: it answered an error (it cannot say); True:
        ``in_memory`` is fresh."""
        try:
            with anyio.fail_after(self.tuning.probe_timeout):
                names = await self.client.loaded_models()
        except (OllamaUnreachable, TimeoutError, OllamaTimeout) as exc:
            if judge:
                self.fail(exc)
            return False
        except BackendError:
            self.note_in_memory(None)
            return None
        self.note_in_memory(names)
        return True
