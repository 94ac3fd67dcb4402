"""The task records both protocol eras share: the ``TaskBook`` that keeps them (``ChatTask`` is in
``task_records``, with how a task is read back from the store).

A task wraps one chat job (``core.job``): the book keeps the live ones in memory (bounded) and
every record in the store's ``jobs`` table (status, requester, expiry, the final tool result
as JSON) until its time to live has passed; a task another replica runs is found there too.
One book per server, made in the lifespan and held by ``AppState``; its purge loop runs in the
server's task group.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult

from ..core.job import Job, JobState
from ..core.jobs import Jobs
from ..core.waiting import follow
from ..store import JobRecord, Store
from .task_records import (
    ChatTask,
    Notify,
    RecordStatus,
    cancel_elsewhere,
    from_record,
    may_see,
    principal_of,
    wait_elsewhere,
)
from .task_terms import not_found, result_json

logger = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0
"""Seconds between status notifications that only update a working task's message."""
FINISHED_TASKS_KEPT = 128
"""Finished tasks kept in memory; older ones are answered from the store."""
PURGE_INTERVAL = 60.0
"""Seconds between sweeps of expired task records."""

_ENDED_AS: dict[JobState, RecordStatus] = {
    JobState.COMPLETE: "complete",
    JobState.CANCELLED: "cancelled",
    JobState.INTERRUPTED: "interrupted",
}
Progress = Callable[[float, str], Awaitable[None]]


class TaskBook:
    """This server's tasks: live ones in memory, every one in the store until it expires."""

    def __init__(
        self,
        store: Store,
        jobs: Jobs,
        *,
        final_result: Callable[[Job], CallToolResult],
        progress_interval: float,
        cancel_grace: float,
    ) -> None:
        """``final_result``: what plain ``chat`` answers for a job once it has ended."""
        self._store = store
        self._jobs = jobs
        self._final_result = final_result
        self._progress_interval = progress_interval
        self._cancel_grace = cancel_grace
        self._tasks: OrderedDict[str, ChatTask] = OrderedDict()
        self._finished: deque[str] = deque()

    async def purge_forever(self) -> None:
        """Forget expired tasks every ``PURGE_INTERVAL``, for as long as the server runs."""
        while True:
            await self.purge()
            await anyio.sleep(PURGE_INTERVAL)

    def adopt(
        self, job: Job, requester: str, ttl_ms: int, *, notify: Notify | None, progress: Progress | None
    ) -> ChatTask:
        """Make ``job`` a task of ``requester``: recorded now, watched until it ends."""
        task = ChatTask(job.id, requester, job.created_at, ttl_ms, job=job, notify=notify)
        job.requester, job.expires_at = requester, task.expires_at
        self._jobs.keep(job)
        self._tasks[task.id] = task
        self._jobs.spawn(lambda: self._watch(task, progress))
        return task

    def running_for(self, principal: str) -> int:
        """How many of ``principal``'s tasks are running in this server now."""
        prefix = principal + "|"  # requesters are always within a principal (tasks.requester_of)
        return sum(1 for t in self._tasks.values() if t.running and t.requester.startswith(prefix))

    def jobless(self, requester: str, ttl_ms: int, notify: Notify | None) -> ChatTask:
        """A task for a call that fails before any job starts (bad arguments); ``fail`` it next."""
        task = ChatTask(uuid.uuid4().hex, requester, datetime.now(UTC), ttl_ms, notify=notify)
        self._tasks[task.id] = task
        return task

    def fail(self, task: ChatTask, result: CallToolResult) -> None:
        """End a jobless task with the ``isError`` result its call gave."""
        message = "".join(getattr(block, "text", "") for block in result.content)
        self._end(task, "failed", message, result)
        self._jobs.spawn(lambda: self._announce(task))

    async def find(self, requester: str, task_id: str) -> ChatTask:
        """``requester``'s task ``task_id``; -32602 if it is unknown, expired or someone else's."""
        now = datetime.now(UTC)
        task = self._tasks.get(task_id)
        if task is None:
            record = await anyio.to_thread.run_sync(self._store.get_job, task_id)
            task = from_record(record, self._jobs) if record is not None else None
            if task is not None and not may_see(task, requester, self._store):
                task = None
        elif task.requester != requester:
            task = None
        if task is None or (not task.running and task.expires_at < now):
            raise not_found(task_id)
        return task

    async def ended(self, task: ChatTask) -> ChatTask:
        """``task`` once it has ended (``tasks/result``): from the store, if another replica runs it."""
        if task.running and task.job is None and task.elsewhere:
            found = await wait_elsewhere(self._store, self._jobs, task)
            if found is None:  # expired meanwhile
                raise not_found(task.id)
            return found
        await task.ended.wait()
        return task

    def job_of(self, task_id: str) -> Job | None:
        """The job of this server's task ``task_id`` (a cancel another replica sends)."""
        task = self._tasks.get(task_id)
        return task.job if task is not None else None

    async def page(self, requester: str, limit: int, cursor: str | None) -> tuple[list[ChatTask], str | None]:
        """One page of ``requester``'s tasks, oldest first; -32602 for a cursor not ours."""
        if cursor is None:
            await self.purge()  # a listing starts: forget what has expired
        try:
            records, next_cursor = await anyio.to_thread.run_sync(
                self._store.list_tasks, requester, limit, cursor
            )
        except ValueError:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor") from None
        tasks = [self._tasks.get(r.id) or from_record(r, self._jobs) for r in records]
        return [task for task in tasks if task is not None], next_cursor

    async def cancel(self, task: ChatTask, reason: str) -> bool:
        """Stop ``task``'s model (Ollama's stream is closed before this returns); False if it had ended."""
        job = task.job
        if task.running and job is None and task.elsewhere:
            return await cancel_elsewhere(self._store, self._jobs, task, reason, self._cancel_grace)
        if not task.running or job is None:
            return False
        if not job.cancel(reason):  # its answer is already stored: it completes
            await task.ended.wait()
            return False
        self._jobs.keep(job)
        self._end(task, "cancelled", f"cancelled: {reason}", self._final_result(job))
        await job.join(self._cancel_grace)
        return True

    async def purge(self) -> None:
        now = datetime.now(UTC)
        for key in [k for k, t in self._tasks.items() if not t.running and t.expires_at < now]:
            del self._tasks[key]
        try:
            await anyio.to_thread.run_sync(self._store.delete_expired_jobs, now)
        except Exception:
            logger.warning("could not purge expired task records", exc_info=True)

    # -- internals

    async def _watch(self, task: ChatTask, progress: Progress | None) -> None:
        job = task.job
        assert job is not None
        async with anyio.create_task_group() as tg:
            if progress is not None:
                tg.start_soon(follow, job, progress, self._progress_interval)
            if task.notify is not None:
                tg.start_soon(self._relay_messages, task)
            await job.wait(None)
            tg.cancel_scope.cancel()
        if task.running:
            await job.join(self._cancel_grace)  # its turn (and record) is written by now
            status = _ENDED_AS.get(job.state, "failed")
            detail = str(job.error) if job.error is not None else (job.stop_reason or None)
            self._end(task, status, detail, self._final_result(job))
        await self._announce(task)

    async def _relay_messages(self, task: ChatTask) -> None:
        """A status notification when a working task's message changes, at most every ``STATUS_INTERVAL``."""
        assert task.job is not None
        sent = ""
        while task.running:
            await task.job.changed.wait()
            if task.running and task.message != sent:
                sent = task.message or ""
                await self._send(task)
                await anyio.sleep(STATUS_INTERVAL)

    def _end(self, task: ChatTask, status: RecordStatus, detail: str | None, result: CallToolResult) -> None:
        task.status, task.detail, task.result = status, detail, result_json(result)
        task.updated_at = datetime.now(UTC)
        task.ended.set()
        self._jobs.spawn(lambda: self._save_then_retire(task))

    async def _save_then_retire(self, task: ChatTask) -> None:
        # Off the event loop: a store held by another program must not stall every request.
        await anyio.to_thread.run_sync(self._save, task)
        # Only then may memory forget it (the store answers for it from now on); as Jobs retires
        # jobs, the oldest finished tasks first, without a scan per task.
        self._finished.append(task.id)
        while len(self._finished) > FINISHED_TASKS_KEPT:
            self._tasks.pop(self._finished.popleft(), None)

    def _save(self, task: ChatTask) -> None:
        store, text = self._store, json.dumps(task.result)
        try:
            if task.job is not None:
                store.finish_job(task.id, task.status, task.detail, text)
                store.set_job_result(task.id, text)
            else:  # a call refused before it had a job: its record must carry its expiry too
                at = task.updated_at
                store.record_job(
                    JobRecord(
                        id=task.id,
                        session_id="",
                        model="",
                        status=task.status,
                        owner=self._jobs.owner,
                        started_at=task.created_at,
                        heartbeat_at=at,
                        requester=task.requester,
                        finished_at=at,
                        expires_at=task.expires_at,
                        detail=task.detail,
                        result=text,
                        principal=principal_of(task.requester),
                    )
                )
        except Exception:
            logger.warning("could not record task %s", task.id, exc_info=True)

    async def _announce(self, task: ChatTask) -> None:
        if task.notify is not None:
            await self._send(task)

    async def _send(self, task: ChatTask) -> None:
        assert task.notify is not None
        try:
            await task.notify(task)
        except Exception:  # a requester that went away must not break the task
            logger.debug("could not send a task status notification", exc_info=True)
