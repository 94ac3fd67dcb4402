"""A task as both eras see it (``ChatTask``), and a task read back from its record in the store.

The task book (``taskbook``) keeps the tasks this server runs in memory; one that has left memory,
or that another replica (or another process on the same SQLite file) runs, is read from the job
record its owner keeps: status, the answer's progress while it runs (saved at most once a second,
``core.jobs``), the final tool result once it has one. Such a task has no job here, so waiting for
its end polls the record, and cancelling it asks its owner through the store (``Change.cancel``,
as ``cancel_chat`` does: LISTEN/NOTIFY with PostgreSQL).

Who may see a task: its requester. A handshake-era requester is one connection to one replica,
which can never ask another replica; so where replicas share the store, a task another replica
runs is shown to any requester of the same principal (a bearer token's name), and to nobody else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio
import anyio.to_thread

from ..core.job import Job, JobState
from ..core.jobs import ELSEWHERE_POLL_SECONDS, Jobs
from ..store import Change, JobRecord, Store

RecordStatus = Literal["running", "complete", "failed", "cancelled", "interrupted"]
Notify = Callable[["ChatTask"], Awaitable[None]]

CANCEL_POLL_SECONDS = 0.05
"""How often a cancel sent to another replica looks whether the record says it stopped."""
RESULT_GRACE = timedelta(seconds=10)
"""An owner stores a chat task's turn (its record then reads complete) and its tool result a
moment apart: for this long after the end, a record without its result still reads as running."""


@dataclass(eq=False)
class ChatTask:
    """One task: its job while it runs, then its final tool result."""

    id: str
    requester: str
    created_at: datetime
    ttl_ms: int
    job: Job | None = None
    status: RecordStatus = "running"
    """In the store's vocabulary; each era's view maps it to its own statuses."""
    detail: str | None = None
    """Why it ended, when it did not end well."""
    result: dict[str, Any] | None = None
    """The final ``CallToolResult`` as JSON, without ``resultType``."""
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    notify: Notify | None = None
    """Sends a status notification, where the era has a place for one."""
    ended: anyio.Event = field(default_factory=anyio.Event)
    elsewhere: bool = False
    """Read from the record of a task another replica (or process) runs or ran."""
    note: str | None = None
    """What it was doing when its owner last saved its progress (a task running elsewhere)."""

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(milliseconds=self.ttl_ms)

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def message(self) -> str | None:
        """What the task is doing now, or why it ended."""
        if self.running:
            doing = self.job.message if self.job is not None else self.note
            return doing or "the local model is starting"
        return self.detail

    @property
    def last_updated(self) -> datetime:
        if self.running and self.job is not None:
            return max(self.updated_at, self.job.last_change)
        return self.updated_at


def principal_of(requester: str) -> str:
    """The principal a requester belongs to (requesters are ``principal|…``: ``tasks.requester_of``)."""
    return requester.split("|", 1)[0]


def may_see(task: ChatTask, requester: str, store: Store) -> bool:
    """Whether ``requester`` may see ``task`` (see the module docstring)."""
    if task.requester == requester:
        return True
    return (
        store.shared_by_replicas
        and task.elsewhere
        and principal_of(task.requester) == principal_of(requester)
    )


def from_record(record: JobRecord, jobs: Jobs) -> ChatTask | None:
    """The task a job record holds; None for a job that is no task."""
    if record.requester is None or record.expires_at is None:
        return None
    status: RecordStatus = record.status  # type: ignore[assignment]  # the table's CHECK
    if status == "running" and jobs.stored_state(record) is JobState.INTERRUPTED:
        status = "interrupted"
    elsewhere = record.owner != jobs.owner
    if elsewhere and status in ("complete", "failed", "cancelled") and record.result is None:
        ended = record.finished_at or record.heartbeat_at
        if datetime.now(UTC) - ended < RESULT_GRACE:
            status = "running"  # its owner is about to store the result
    ttl = int((record.expires_at - record.started_at) / timedelta(milliseconds=1))
    task = ChatTask(record.id, record.requester, record.started_at, ttl, status=status, elsewhere=elsewhere)
    task.detail = None if task.running else record.detail
    task.result = json.loads(record.result) if record.result else None
    progress = record.progress
    task.note = progress.message if progress is not None else None
    changed = progress.changed_at if progress is not None else None
    task.updated_at = record.finished_at or changed or record.heartbeat_at
    if not task.running:
        task.ended.set()
    return task


async def wait_elsewhere(store: Store, jobs: Jobs, task: ChatTask) -> ChatTask | None:
    """``task`` (running elsewhere) once it has ended, read from its record; None if its record is
    gone meanwhile (it expired)."""
    found: ChatTask | None = task
    while found is not None and found.running:
        await anyio.sleep(ELSEWHERE_POLL_SECONDS)
        record = await anyio.to_thread.run_sync(store.get_job, task.id)
        found = from_record(record, jobs) if record is not None else None
    return found


async def cancel_elsewhere(store: Store, jobs: Jobs, task: ChatTask, reason: str, grace: float) -> bool:
    """Ask the replica running ``task`` to stop it, and wait up to ``grace`` s for its record to
    say so; ``task`` takes what the record says. False: it had ended otherwise (say, complete),
    or no other replica can be asked (SQLite). Not confirmed within ``grace``: True (it was asked)."""
    record = await anyio.to_thread.run_sync(store.get_job, task.id)
    if record is None or record.status != "running":  # it has ended (its result may be on its way)
        _take_end(task, record)
        return False
    why = f"{reason} on another server replica"
    ask = Change(principal_of(task.requester), "", cancel=task.id, reason=why)
    if not await anyio.to_thread.run_sync(store.publish, ask):
        return False
    with anyio.move_on_after(grace):
        while record is not None and record.status == "running":
            await anyio.sleep(CANCEL_POLL_SECONDS)
            record = await anyio.to_thread.run_sync(store.get_job, task.id)
    if record is not None and record.status == "running":
        return True
    _take_end(task, record)
    return task.status == "cancelled"


def _take_end(task: ChatTask, record: JobRecord | None) -> None:
    """``task`` as its ended ``record`` says (none: it expired meanwhile; read as interrupted)."""
    if record is None:
        task.status = "interrupted"
    else:
        task.status = record.status  # type: ignore[assignment]  # the table's CHECK
        task.detail = record.detail
        task.updated_at = record.finished_at or record.heartbeat_at
        task.result = json.loads(record.result) if record.result else task.result
    task.ended.set()
