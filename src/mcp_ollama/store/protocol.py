"""``Store``: what the code above needs from a session store, whichever database holds it.

Two implementations satisfy it: ``ChatStore`` (SQLite, one file, the embedded default) and
``store.postgres.PostgresStore`` (one PostgreSQL database shared by several server replicas).
Both are synchronous and safe to share between threads; async code calls them through
``anyio.to_thread``, or, for a turn's own work, ``core.store_calls.run_store``, which runs it at once
when that waits for nobody (``now_or_not``). ``store.opening.open_store`` picks one from the
settings; nothing above ``store/`` names either class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar

from .base import NotNow
from .job_records import JobProgress, JobRecord
from .records import LOCAL, ImageNote, SessionInfo, StoredMessage

T = TypeVar("T")


@dataclass(frozen=True)
class Change:
    """A change to a principal's session resource that another replica's subscribers must hear of."""

    principal: str
    uri: str
    """The session resource that changed (``resources/updated``)."""
    list_changed: bool = False
    """The list of sessions changed too (a session made or deleted: ``list_changed``)."""
    cancel: str | None = None
    """Not a change but a request: stop the job with this id (``cancel_chat`` on another replica)."""
    reason: str | None = None
    """For a cancel: why, as the job's record will say (``tasks/cancel`` or ``cancel_chat``)."""


class Store(Protocol):
    """Sessions, their turns, job and task records, and who is writing which session's turn."""

    path: str
    """Where the store lives, safe to show: a file path, or a PostgreSQL URL without its password."""

    shared_by_replicas: bool
    """Whether replicas of one server, serving the same users, share it (PostgreSQL). A record
    another owner wrote may then be a task a user started on another replica (``TaskBook``).
    False for SQLite: other processes on its file are other hosts' servers."""

    def close(self) -> None:
        """Close the store. Safe to call twice."""

    def now_or_not(self, work: Callable[[], T]) -> T | Literal[NotNow.NOT_NOW]:
        """``work()`` (calls of this store) at once, when that waits for nobody; else ``NOT_NOW``,
        having changed nothing. Async code calls it through ``core.store_calls.run_store``."""

    def checkpoint_due(self) -> bool:
        """Whether ``checkpoint`` should run (in a worker thread: ``core.store_calls.keep_checkpointing``)."""

    def checkpoint(self) -> None:
        """Bring the database file up to date with what was written (it may sync to disk)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    # --- sessions and messages ----------------------------------------------------------

    def get_session(self, session_id: str, *, principal: str = LOCAL) -> SessionInfo | None:
        """The session's summary, or None if ``principal`` has no such session."""

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, *, principal: str = LOCAL
    ) -> tuple[list[SessionInfo], str | None]:
        """One page of ``principal``'s sessions, most recently active first, and the next cursor."""

    def recent_messages(
        self, session_id: str, max_turns: int, *, principal: str = LOCAL
    ) -> list[StoredMessage]:
        """The last ``max_turns`` turns in chronological order; empty for an unknown session."""

    def messages(self, session_id: str, *, principal: str = LOCAL) -> list[StoredMessage]:
        """The whole transcript; ``SessionNotFound`` if there is no such session."""

    def session_ids(self, prefix: str = "", limit: int = 100, *, principal: str = LOCAL) -> list[str]:
        """``principal``'s ids starting with ``prefix`` (literally), most recently active first."""

    def count_sessions(self) -> int:
        """How many sessions are stored."""

    def append_turn(
        self,
        session_id: str,
        *,
        model: str,
        user: str,
        assistant: str,
        meta: Mapping[str, object] | None = None,
        job_id: str | None = None,
        lease_owner: str | None = None,
        thinking: str | None = None,
        images: tuple[ImageNote, ...] = (),
        principal: str = LOCAL,
        asked_at: datetime | None = None,
    ) -> bool:
        """Store one turn in one transaction, exactly once; True if it created the session.

        ``asked_at``: when the message was sent, the user message's time (default: now, as the
        answer's)."""

    def remove_last_turn(self, session_id: str, *, drop_session: bool, principal: str = LOCAL) -> None:
        """Take back the session's newest turn (and the session, when ``drop_session``)."""

    def delete_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        """Delete the session and its messages; False if there was none."""

    def clear_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        """Drop the session's messages, keep the session; False if there was none."""

    # --- who writes a session's turn now ------------------------------------------------

    def begin_turn(
        self, session_id: str, owner: str, max_turns: int, lease_seconds: float, *, principal: str = LOCAL
    ) -> list[StoredMessage] | None:
        """Take the session for ``owner`` and read its last turns; None while another writer has it."""

    def release_lease(self, session_id: str, owner: str, *, principal: str = LOCAL) -> None:
        """Give the session back (a turn that failed or was cancelled)."""

    def renew_leases(self, owner: str, lease_seconds: float) -> None:
        """``owner`` is alive and still writing: keep what it holds."""

    # --- jobs and tasks -----------------------------------------------------------------

    def record_job(self, job: JobRecord) -> None:
        """Write (or overwrite) a job's record."""

    def finish_job(
        self, job_id: str, status: str, detail: str | None = None, result: str | None = None
    ) -> None:
        """Close a running job's record as ``status``; a finished record is left as it is."""

    def set_job_result(self, job_id: str, result: str) -> None:
        """Keep a finished task's tool result (JSON) with its record."""

    def save_progress(self, progress: Mapping[str, JobProgress]) -> None:
        """Keep how far each of these running jobs (by id) has got, in one transaction, and refresh
        their heartbeats; a job that has ended keeps its end. Its owner calls this at most once a
        second, for the jobs that changed (``core.jobs``); the job's end clears it."""

    def touch_jobs(self, owner: str) -> None:
        """Refresh the heartbeat of every job ``owner`` is running."""

    def latest_job(self, session_id: str, *, principal: str = LOCAL) -> JobRecord | None:
        """The most recently started recorded job of ``principal``'s ``session_id``."""

    def latest_job_of(self, principal: str = LOCAL) -> JobRecord | None:
        """The most recently started recorded chat job of ``principal``, in any session (no tasks)."""

    def get_job(self, job_id: str) -> JobRecord | None:
        """A job's record, or None."""

    def last_answer(
        self, session_id: str, *, principal: str = LOCAL
    ) -> tuple[StoredMessage, dict[str, Any]] | None:
        """The session's newest assistant message and its meta."""

    def list_tasks(
        self, requester: str, limit: int = 50, cursor: str | None = None, now: datetime | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """One page of ``requester``'s unexpired task records, oldest first, and the next cursor."""

    def delete_expired_jobs(self, now: datetime | None = None) -> int:
        """Forget task records whose time to live has passed; how many."""

    # --- clients ------------------------------------------------------------------------

    def client_timeout(self, client: str, *, principal: str = LOCAL) -> tuple[float, datetime] | None:
        """How long ``client`` (a ``clientInfo`` name) waited before it timed a tool call out, and
        when that was learned; None if it never did."""

    def learn_client_timeout(self, client: str, seconds: float, *, principal: str = LOCAL) -> None:
        """``client`` timed a tool call out after ``seconds``: keep that, replacing what was known."""

    # --- replicas -----------------------------------------------------------------------

    def publish(self, change: Change) -> bool:
        """Tell the other replicas sharing this store of ``change``; False: there are none to tell
        (SQLite)."""

    def changes(self, timeout: float) -> list[Change] | None:
        """What other replicas published, waiting up to ``timeout`` s for the first; ``None``: no
        other replica can publish to this store (SQLite), so do not ask again."""
