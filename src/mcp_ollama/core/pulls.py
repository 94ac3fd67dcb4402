"""Pulling a model onto Ollama servers as a job that outlives the request: ``PullJob`` and ``Pulls``.

A ``PullJob`` is a ``core.job.Job`` (so the server's task book, its progress relay and its store
records take it as they take a chat turn) whose plan names only the model and whose pull it is:
no session, no message. It pulls on one or several servers at once and keeps each one's bytes
per layer. Its progress counts bytes (all servers together) plus one per step after the download
(verifying, writing the manifest, done), so the value only grows and ends equal to ``total``.
``Pulls`` starts them (one at a time per model and servers: a second request joins the first),
finds them by id and forgets the oldest finished ones. Nothing here knows about MCP or HTTP.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..backend.admin_models import ModelInfo, PullProgress
from ..backend_errors import PullFailed, unknown_manifest
from ..errors import JobFailed, McpOllamaError
from ..store import LOCAL
from .job import Job, JobState
from .pull_progress import ServerPull
from .turns import TurnPlan

logger = logging.getLogger(__name__)

FINISHED_PULLS_KEPT = 32
"""Finished pulls kept for ``pull_result``; older ones are forgotten."""
_PERCENT = re.compile(r": \d+ %")

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]
"""Runs a coroutine function in the server's task group (``Jobs.spawn``)."""
Pulled = Callable[["PullJob"], Awaitable[None]]
"""Called once a pull has ended with the model on at least one server, before waiters hear of it."""
PullReport = Callable[[float, float | None, str], Awaitable[None]]
"""Send one progress notification: a strictly increasing value, the total when known, a message."""


class PullSource(Protocol):
    """One Ollama server, as a pull needs it (``backend.client.OllamaClient``)."""

    @property
    def base_url(self) -> str: ...

    def pull_stream(
        self, model: str, *, insecure: bool = False
    ) -> AbstractAsyncContextManager[AsyncIterator[PullProgress]]: ...

    async def list_models(self) -> list[ModelInfo]: ...


@dataclass(eq=False)
class PullJob(Job):
    """One model being pulled onto one or several servers (see the module docstring)."""

    servers: dict[str, ServerPull] = field(default_factory=dict)
    """Each target server's part, by URL, in the order given."""
    insecure: bool = False
    steps: list[str] = field(default_factory=list)
    """Every step the pull went through, in order: its messages without the percentages."""

    @property
    def progress(self) -> int:
        """Bytes downloaded on every server, plus the steps after the download."""
        return sum(server.completed for server in self.servers.values())

    @property
    def total(self) -> int | None:
        """What ``progress`` ends at; None until every server has said how big the model is."""
        totals = [server.total for server in self.servers.values()]
        return None if any(t is None for t in totals) else sum(t for t in totals if t is not None)

    @property
    def failed(self) -> list[ServerPull]:
        return [server for server in self.servers.values() if server.error is not None]

    def describe(self) -> str:
        """The progress message: the model and where each server's pull stands."""
        parts = [server.describe() for server in self.servers.values()]
        if len(parts) == 1:
            return f"{self.model}: {parts[0]}"
        places = ", ".join(f"{_host(url)} {part}" for url, part in zip(self.servers, parts, strict=True))
        return f"{self.model}: {places}"

    def note(self) -> None:
        """A line came in or a server ended: the message and the progress may have changed."""
        self.beats += 1
        message = self.describe()
        step = _PERCENT.sub("", message)
        if not self.steps or self.steps[-1] != step:
            self.steps.append(step)
        self._change(JobState.WRITING if self.progress else self.state, message)


def _host(url: str) -> str:
    return url.split("://", 1)[-1]


def pull_plan(model: str, principal: str) -> TurnPlan:
    """A pull's plan: its model and whose pull it is; no session, no message."""
    return TurnPlan(message="", session_id="", model=model, options=None, principal=principal)


class Pulls:
    """This server's pulls: the running ones, and the last ``FINISHED_PULLS_KEPT`` finished."""

    def __init__(self) -> None:
        self._pulls: OrderedDict[str, PullJob] = OrderedDict()
        self._finished: deque[str] = deque()

    def get(self, pull_id: str) -> PullJob | None:
        return self._pulls.get(pull_id)

    def start(
        self,
        model: str,
        sources: Sequence[PullSource],
        *,
        spawn: Spawn,
        principal: str = LOCAL,
        insecure: bool = False,
        on_pulled: Pulled | None = None,
        join: bool = True,
    ) -> tuple[PullJob, bool]:
        """Pull ``model`` onto ``sources`` in the background; the job, and whether it is new. With
        ``join``, a pull of the same model onto the same servers already running is joined instead
        (without, a second one starts: Ollama shares the download of a layer between them)."""
        urls = [source.base_url for source in sources]
        for job in self._pulls.values() if join else ():
            if not job.done and job.model == model and list(job.servers) == urls:
                return job, False
        job_id = uuid.uuid4().hex
        job = PullJob(
            id=job_id,
            plan=pull_plan(model, principal),
            servers={url: ServerPull(url) for url in urls},
            insecure=insecure,
        )
        job.note()
        self._pulls[job_id] = job
        spawn(lambda: self._run(job, sources, on_pulled))
        return job, True

    async def _run(self, job: PullJob, sources: Sequence[PullSource], on_pulled: Pulled | None) -> None:
        try:
            with job._scope:
                try:
                    async with anyio.create_task_group() as tg:
                        for source in sources:
                            tg.start_soon(_pull_one, job, source)
                except Exception as exc:  # each server's own failures are caught in _pull_one
                    logger.exception("pull %s failed", job.id)
                    job.error = JobFailed(
                        f"The pull of {job.model} could not be completed: {type(exc).__name__}: {exc}. "
                        "Try again; if it keeps happening, report the server's log."
                    )
            if on_pulled is not None and any(server.done for server in job.servers.values()):
                try:
                    await on_pulled(job)
                except Exception:
                    logger.warning("could not announce the pull of %s", job.model, exc_info=True)
            if not job.done:
                failed = job.failed
                if job.error is None and failed:
                    job.error = failed[0].error
                job._end(JobState.FAILED if job.error is not None else JobState.COMPLETE)
        except anyio.get_cancelled_exc_class():
            job.cancel("the server stopped before the pull was complete", JobState.INTERRUPTED)
            raise
        finally:
            job._exited.set()
            self._retire(job)

    def _retire(self, job: PullJob) -> None:
        self._finished.append(job.id)
        while len(self._finished) > FINISHED_PULLS_KEPT:
            self._pulls.pop(self._finished.popleft(), None)


async def _pull_one(job: PullJob, source: PullSource) -> None:
    """Pull on one server, noting each line; its failure is its own (the other servers go on)."""
    server = job.servers[source.base_url]
    try:
        async with source.pull_stream(job.model, insecure=job.insecure) as lines:
            async for line in lines:
                server.update(line)
                job.note()
        if not server.done:  # the stream ended cleanly without "success": not Ollama talking
            raise PullFailed(job.model, source.base_url, "the pull stream ended without 'success'")
    except PullFailed as exc:
        server.error = exc
        if unknown_manifest(exc.detail):
            server.error = PullFailed(exc.model, exc.url, exc.detail, await _pulled_names(source))
    except McpOllamaError as exc:
        server.error = exc
    job.note()


async def _pulled_names(source: PullSource) -> list[str] | None:
    try:
        with anyio.fail_after(5):
            return [model.name for model in await source.list_models()]
    except (McpOllamaError, TimeoutError):
        return None


async def relay(job: PullJob, report: PullReport, interval: float) -> None:
    """Relay ``job``'s progress through ``report`` until it ends: at once, then on each change, at
    most every ``interval`` seconds. The value strictly increases (nudged up by thousandths where a
    message changed but no byte came) and never passes the total."""
    last_value, last_sent, sent = -1.0, -math.inf, (-1, "")
    while not job.done:
        changed = job.changed
        news = (job.beats, job.message)
        if not job.message or news == sent:
            await changed.wait()
            continue
        gap = last_sent + interval - time.monotonic()
        if gap > 0:
            await anyio.sleep(gap)  # then send whatever is newest by then
            continue
        value = float(job.progress) if job.progress > last_value else last_value + 0.001
        total = job.total
        last_value, last_sent, sent = value, time.monotonic(), (job.beats, job.message)
        try:
            await report(value, None if total is None else max(float(total), value), job.message)
        except Exception:  # a waiter that went away must not break anything
            logger.debug("a progress notification could not be sent", exc_info=True)
            return
