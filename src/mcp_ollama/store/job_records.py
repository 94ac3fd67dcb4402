"""Job and task records as plain values: ``JobRecord`` and its ``JobProgress``, the columns both
stores keep them in, and rows made back into records."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .records import LOCAL, _format_time, _parse_time, _public, _Row, session_key


@dataclass(frozen=True, slots=True)
class JobProgress:
    """How far a running job has got, kept with its record (at most once a second) so that
    ``chat_result`` and ``tasks/get`` on another replica, or another process, can tell."""

    partial: str
    """The answer written so far."""
    state: str
    """``queued``, ``started`` or ``writing`` (``core.job.JobState``)."""
    tokens: int = 0
    """Pieces of the answer so far."""
    thoughts: int = 0
    """Pieces of thinking so far."""
    message: str = ""
    """What the job is doing now, as its progress notifications say."""
    changed_at: datetime | None = None
    """When any of this last changed."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A generation's record: one that outlived its request, or an MCP task."""

    id: str
    session_id: str
    model: str
    status: str
    """``running``, ``complete``, ``failed``, ``cancelled`` or ``interrupted``."""
    owner: str
    """The server process that runs (or ran) it."""
    started_at: datetime
    heartbeat_at: datetime
    requester: str | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    detail: str | None = None
    result: str | None = None
    principal: str = LOCAL
    """Whose job it is (the principal of its session)."""
    progress: JobProgress | None = None
    """How far it had got when last saved; None once it has ended (or never saved)."""


_JOB_COLUMNS = (
    "id, session_id, model, status, owner, started_at, heartbeat_at, requester, finished_at,"
    " expires_at, detail, result, principal, partial, progress"
)


def _job_values(
    job: JobRecord,
    encode: Callable[[JobProgress | None], tuple[str | None, str | None]] | None = None,
) -> _Row:
    """``job`` as the values of ``_JOB_COLUMNS``, its progress (kept while it runs) by ``encode``."""
    return (
        job.id,
        # A task whose call failed before it had a session has none.
        session_key(job.session_id, job.principal) if job.session_id else "",
        job.model,
        job.status,
        job.owner,
        _format_time(job.started_at),
        _format_time(job.heartbeat_at),
        job.requester,
        _format_time(job.finished_at) if job.finished_at else None,
        _format_time(job.expires_at) if job.expires_at else None,
        job.detail,
        job.result,
        job.principal,
        *(encode or encode_progress)(job.progress if job.status == "running" else None),
    )


def encode_progress(progress: JobProgress | None) -> tuple[str | None, str | None]:
    """A job's progress as its two columns: the answer so far, and the rest as JSON."""
    if progress is None:
        return None, None
    changed = _format_time(progress.changed_at) if progress.changed_at is not None else None
    rest = {"state": progress.state, "tokens": progress.tokens, "thoughts": progress.thoughts}
    rest |= {"message": progress.message, "changed_at": changed}
    return progress.partial, json.dumps(rest, ensure_ascii=False)


def _progress(partial: str | None, text: str | None) -> JobProgress | None:
    if partial is None or not text:
        return None
    try:  # progress is a courtesy to readers: a damaged one reads as none
        rest = json.loads(text)
        changed = rest.get("changed_at")
        return JobProgress(
            partial,
            str(rest["state"]),
            int(rest.get("tokens", 0)),
            int(rest.get("thoughts", 0)),
            str(rest.get("message", "")),
            _parse_time(changed) if changed else None,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _job_from_row(row: _Row) -> JobRecord:
    def when(text: str | None) -> datetime | None:
        return _parse_time(text) if text else None

    return JobRecord(
        id=row[0],
        session_id=_public(row[1]),
        model=row[2],
        status=row[3],
        owner=row[4],
        started_at=_parse_time(row[5]),
        heartbeat_at=_parse_time(row[6]),
        requester=row[7],
        finished_at=when(row[8]),
        expires_at=when(row[9]),
        detail=row[10],
        result=row[11],
        principal=row[12],
        progress=_progress(row[13], row[14]),
    )
