"""Generations that outlive the request that asked for them.

A ``Job`` runs one chat turn in the server's own task group (``Jobs``, opened in the server's
lifespan), so a request that stops waiting (its answer deadline passed) does not stop the
model. Requests wait on a job with ``Job.wait`` and relay its progress with ``follow``. A job
that outlives its request is recorded in the store, so a later request, or another process
after a restart, can tell what became of it. Nothing here knows about MCP or HTTP.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from ..errors import JobFailed, McpOllamaError
from ..store.records import LOCAL
from .heartbeats import Probe, beat_forever
from .job import Job, JobState
from .store_calls import keep_checkpointing
from .turns import LEASE_RENEW_INTERVAL, LEASE_SECONDS, TurnPlan

if TYPE_CHECKING:
    from ..store import JobRecord, Store
    from .chat import ChatService

logger = logging.getLogger(__name__)

LIVENESS_INTERVAL = 15.0
"""Seconds between refreshes of a running recorded job's heartbeat."""
STALE_AFTER = timedelta(seconds=4 * LIVENESS_INTERVAL)
"""A running record not refreshed for this long belongs to a process that died."""
PROGRESS_INTERVAL = 1.0
"""Seconds between saves of how far recorded running jobs have got (the answer so far): at most
one write per job per interval, only for jobs that changed, all of them in one transaction."""
ELSEWHERE_POLL_SECONDS = PROGRESS_INTERVAL / 2
"""How often a request waiting on a job another replica (or process) runs reads its record
(``chat_result``, a task's result), which its owner updates every ``PROGRESS_INTERVAL``."""
FINISHED_KEPT = 256
"""Finished jobs kept in memory for ``chat_result``; older ones are answered from the store."""

Finished = Callable[["Job"], Awaitable[None]]
"""Called once a job's turn is stored, before anyone waiting hears of it."""


class Jobs:
    """Every job of this server process, run in a task group that lives as long as the server."""

    def __init__(
        self,
        chat: ChatService,
        store: Store,
        *,
        probe: Probe | None = None,
        on_finished: Finished | None = None,
        heartbeat_interval: float = 4.0,
    ) -> None:
        self.owner = chat.owner
        """This process's name in job records and session leases."""
        self._chat = chat
        self._store = store
        self._probe = probe
        self._on_finished = on_finished
        self._heartbeat_interval = heartbeat_interval
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._finished: deque[str] = deque()
        self._saved: dict[str, tuple[object, ...]] = {}
        """What ``_keep_progress`` last saved of each recorded running job (``_mark``)."""
        self._tg: TaskGroup | None = None
        self._settled = anyio.Event()
        """Set at once: what a finished job's events become (``Job.release``)."""
        self._settled.set()
        self._spent = anyio.CancelScope()
        """Never entered: what a finished job's cancel scope becomes (``Job.release``)."""

    async def __aenter__(self) -> Jobs:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keep_records_alive)
        self._tg.start_soon(self._keep_leases)
        self._tg.start_soon(beat_forever, self._jobs.values, self._heartbeat_interval, self._probe)
        self._tg.start_soon(self._keep_progress)
        self._tg.start_soon(keep_checkpointing, self._store)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        for job in list(self._jobs.values()):
            if job.cancel("the server stopped before the answer was complete", JobState.INTERRUPTED):
                self._save(job)
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(exc_type, exc, tb)

    def spawn(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``function`` in the background for as long as the server runs."""
        assert self._tg is not None, "Jobs is not running"
        self._tg.start_soon(function)

    def start(self, plan: TurnPlan) -> Job:
        """Start running ``plan`` now; the job runs to its end whether or not anyone waits."""
        job_id = uuid.uuid4().hex
        job = Job(id=job_id, plan=replace(plan, job_id=job_id))
        self._jobs[job_id] = job
        self.spawn(lambda: self._run(job))
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def in_session(self, session_id: str, principal: str = LOCAL) -> list[Job]:
        """This process's jobs in ``principal``'s ``session_id`` that are still known, oldest first."""
        return [
            job
            for job in self._jobs.values()
            if job.session_id == session_id and job.plan.principal == principal
        ]

    def latest(self, session_id: str, principal: str = LOCAL) -> Job | None:
        jobs = self.in_session(session_id, principal)
        return jobs[-1] if jobs else None

    def newest(self, principal: str = LOCAL) -> Job | None:
        """``principal``'s most recently started chat job still known to this process, in any session."""
        return max(
            (job for job in self._jobs.values() if job.plan.principal == principal and job.requester is None),
            key=lambda job: job.created_at,
            default=None,
        )

    def keep(self, job: Job) -> None:
        """Record ``job`` in the store: it outlives the request that started it.

        The one store write the event loop makes itself: small, once per job that outlives its
        request, and it must land before the answer that promises ``chat_result`` goes out.
        """
        if not job.recorded:
            job.recorded = True
            self._saved[job.id] = _mark(job)  # the record carries its progress so far
            self._save(job)

    def stored_state(self, record: JobRecord) -> JobState:
        """What a job record in the store says, a dead owner's 'running' read as interrupted."""
        if record.status != "running":
            return JobState(record.status)
        if record.owner == self.owner:
            job = self._jobs.get(record.id)
            return job.state if job is not None else JobState.INTERRUPTED
        if datetime.now(UTC) - record.heartbeat_at > STALE_AFTER:
            return JobState.INTERRUPTED
        return JobState.WRITING

    # -- internals

    def _save(self, job: Job) -> None:
        try:
            self._store.record_job(job.record(self.owner))
        except Exception:
            logger.warning("could not record job %s of session %s", job.id, job.session_id, exc_info=True)

    async def _run(self, job: Job) -> None:
        try:
            await self._run_turn(job)
        finally:
            job._exited.set()
            job.release(self._settled, self._spent)

    async def _run_turn(self, job: Job) -> None:
        with job._scope:
            try:
                job.outcome = await self._chat.run(job.plan, job)
            except McpOllamaError as exc:
                job.error = exc
            except Exception as exc:
                logger.exception("job %s failed", job.id)
                job.error = JobFailed(
                    f"The answer could not be completed: {type(exc).__name__}: {exc}. Try again; "
                    "if it keeps happening, run `mcp-ollama doctor` and report the server's log."
                )
        if job.done:  # cancelled or interrupted: its record is written by whoever stopped it
            if job.recorded:
                await self._finish_record(job, job.state.value, job.stop_reason)
            self._retire(job)
            return
        if job.outcome is not None and self._on_finished is not None:
            try:
                await self._on_finished(job)
            except Exception:
                logger.warning("could not announce job %s", job.id, exc_info=True)
        if job.error is not None and job.recorded:
            await self._finish_record(job, "failed", str(job.error))
        job._end(JobState.FAILED if job.error is not None else JobState.COMPLETE)
        self._retire(job)

    async def _finish_record(self, job: Job, status: str, detail: str) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._store.finish_job, job.id, status, detail)
            except Exception:
                logger.warning("could not record the end of job %s", job.id, exc_info=True)

    def _retire(self, job: Job) -> None:
        """Keep at most ``FINISHED_KEPT`` finished jobs in memory, forgetting the oldest first."""
        self._finished.append(job.id)
        while len(self._finished) > FINISHED_KEPT:
            self._jobs.pop(self._finished.popleft(), None)

    async def _keep_records_alive(self) -> None:
        while True:
            await anyio.sleep(LIVENESS_INTERVAL)
            if any(job.recorded and not job.done for job in self._jobs.values()):
                try:
                    await anyio.to_thread.run_sync(self._store.touch_jobs, self.owner)
                except Exception:
                    logger.warning("could not refresh job records", exc_info=True)

    async def _keep_progress(self) -> None:
        """Every ``PROGRESS_INTERVAL``: how far each recorded running job that changed has got, to
        the store, so that ``chat_result`` and ``tasks/get`` on another replica (or process) can
        show the answer so far. Never per token: one transaction a second at most."""
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            running = [job for job in self._jobs.values() if job.recorded and not job.done]
            marks = {job.id: _mark(job) for job in running}
            due = {job.id: job.snapshot() for job in running if self._saved.get(job.id) != marks[job.id]}
            self._saved = {job_id: self._saved[job_id] for job_id in marks if job_id in self._saved}
            if not due:
                continue
            try:
                await anyio.to_thread.run_sync(self._store.save_progress, due)
            except Exception:
                logger.warning("could not save the progress of running jobs", exc_info=True)
                continue
            self._saved.update((job_id, marks[job_id]) for job_id in due)

    async def _keep_leases(self) -> None:
        """Renew this process's session leases while any job runs (often: a dead holder is found soon)."""
        while True:
            await anyio.sleep(LEASE_RENEW_INTERVAL)
            if any(not job.done for job in self._jobs.values()):
                try:
                    await anyio.to_thread.run_sync(self._store.renew_leases, self.owner, LEASE_SECONDS)
                except Exception:
                    logger.warning("could not renew session leases", exc_info=True)


def _mark(job: Job) -> tuple[object, ...]:
    """What changes when a job's saved progress would: its state, counts and message."""
    return (job.state, job.tokens, job.thoughts, job.message)
