"""What ``chat``, ``chat_result`` and a chat task answer about a job: the whole answer, the part
written so far, why it stopped, or what the store holds when this process knows no job."""

from __future__ import annotations

from mcp_types import CallToolResult

from ..core.job import Job, JobState
from ..core.text import count
from ..core.turns import TurnOutcome
from ..errors import McpOllamaError, SessionNotFound
from ..store import JobProgress
from .errors import public_text, tool_error
from .results import ChatResult, ChatStatus, Usage, complete_result, complete_text
from .state import AppState, session_uri, structured_result


def answered(job: Job) -> str:
    return f"{job.model} answered in session {job.session_id}: {count(job.tokens, 'token')}"


def finished_result(job: Job) -> CallToolResult:
    """What ``chat`` (or ``chat_result``, or a task's result) answers for a job that has ended."""
    if job.state is JobState.COMPLETE and job.outcome is not None:
        return complete(job, job.outcome)
    if job.error is not None:
        return tool_error(job.error)
    status: ChatStatus = "interrupted" if job.state is JobState.INTERRUPTED else "cancelled"
    result = ChatResult(
        session_id=job.session_id,
        model=job.model,
        answer="",
        status=status,
        tokens_so_far=job.tokens,
        saved=False,
    )
    text = (
        f"The answer in session {job.session_id} was {status} ({job.stop_reason}) after "
        f"{count(job.tokens, 'token')}; nothing of it was stored. Send the message again with chat to get "
        "an answer."
    )
    return structured_result(text, result)


def complete(job: Job, outcome: TurnOutcome) -> CallToolResult:
    """The whole answer; a note when the caller named a session that did not exist (a typo?)."""
    thinking = job.plan.include_thinking
    text = complete_text(outcome, include_thinking=thinking)
    if outcome.new_session and not job.plan.fresh:
        text += (
            f"\n\n[New session {outcome.session_id}: no session had this id, so the model saw no "
            "earlier turns.]"
        )
    return structured_result(text, complete_result(outcome, include_thinking=thinking))


def generating(job: Job, *, new_session: bool) -> CallToolResult:
    """The part written so far: the job goes on, and ``chat_result`` gets the rest."""
    return _generating(job.session_id, job.model, job.snapshot(), new_session=new_session)


def _generating(sid: str, model: str, progress: JobProgress, *, new_session: bool) -> CallToolResult:
    """``generating`` from how far a job has got: this process's job, or one whose record another
    replica (or process) keeps up to date (``from_store``)."""
    tokens, thoughts = progress.tokens, progress.thoughts
    if progress.state == JobState.QUEUED:
        doing = "is waiting for the previous answer in this session to finish"
    elif tokens == 0 and thoughts:
        doing = f"is thinking ({count(thoughts, 'token')} of thinking so far)"
    elif tokens == 0:
        doing = "has not written anything yet (it may be loading the model or reading the prompt)"
    else:
        doing = f"is still writing ({count(tokens, 'token')} so far)"
    where = f"new session {sid}" if new_session else f"session {sid}"
    rest = "the rest" if tokens else "the answer"
    text = (
        f"The local model {doing} in {where}. Call `chat_result` with session_id {sid!r} (or with no "
        f"arguments: your most recent chat) to get {rest}; `cancel_chat` stops it."
    )
    if tokens:
        text += f"\n\nSo far:\n{progress.partial}"
    result = ChatResult(
        session_id=sid,
        model=model,
        answer=progress.partial,
        status="generating",
        new_session=new_session,
        tokens_so_far=tokens,
        saved=False,
    )
    return structured_result(text, result)


def still_generating(result: CallToolResult) -> bool:
    """Whether ``result`` says the answer is still being written."""
    return isinstance(result.structured_content, dict) and result.structured_content.get("status") == (
        "generating"
    )


def from_store(state: AppState, sid: str, who: str) -> CallToolResult:
    """``chat_result`` with no job of this process in the session: what the store knows."""
    record = state.store.latest_job(sid, principal=who)
    last = state.store.last_answer(sid, principal=who)
    if record is not None and (last is None or record.started_at > last[0].created_at):
        found = state.jobs.stored_state(record)
        if found in (JobState.INTERRUPTED, JobState.CANCELLED):
            status: ChatStatus = "interrupted" if found is JobState.INTERRUPTED else "cancelled"
            # How far it got is not recorded: another process (or this one, before a restart) ran it.
            result = ChatResult(
                session_id=sid, model=record.model, answer="", status=status, tokens_so_far=None, saved=False
            )
            why = public_text(record.detail or "the server stopped before the answer was complete")
            text = (
                f"The answer in session {sid} was {status} ({why}); nothing of it was stored. "
                "Send the message again with chat to get an answer."
            )
            return structured_result(text, result)
        if found is JobState.FAILED:
            return tool_error(McpOllamaError(record.detail or "The answer failed."))
        if found is not JobState.COMPLETE and record.progress is not None:
            # Written by another replica (or process), which keeps its progress in the record.
            new = state.store.get_session(sid, principal=who) is None
            return _generating(sid, record.model, record.progress, new_session=new)
        if found is not JobState.COMPLETE:
            result = ChatResult(
                session_id=sid, model=record.model, answer="", status="generating", saved=False
            )
            text = (
                f"Another mcp-ollama process is writing the answer in session {sid}; it is stored "
                f"in the session when complete (resource {session_uri(sid)}). Call chat_result again later."
            )
            return structured_result(text, result)
    if last is None:
        if state.store.get_session(sid, principal=who) is None:
            return tool_error(SessionNotFound(sid))
        return structured_result(
            f"Session {sid} has no stored answer and nothing is being written.",
            ChatResult(session_id=sid, model="", answer="", status="stored"),
        )
    message, meta = last
    result = ChatResult(
        session_id=sid,
        model=str(meta.get("model", "")),
        answer=message.content,
        done_reason=meta.get("done_reason"),
        status="stored",
        usage=Usage(
            prompt_tokens=_count(meta.get("prompt_tokens")),
            completion_tokens=_count(meta.get("completion_tokens")),
        ),
    )
    text = (
        f"Nothing is being written in session {sid}; this is its last stored answer "
        f"({message.created_at.isoformat(timespec='seconds')}):\n\n{message.content}"
    )
    return structured_result(text, result)


def newest_session(state: AppState, who: str) -> str | None:
    """``principal``'s most recent chat in the store: its newest recorded job's session or its most
    recently active session, whichever is newer; None when it has neither."""
    record = state.store.latest_job_of(who)
    sessions, _ = state.store.list_sessions(1, principal=who)
    if record is not None and (not sessions or record.started_at >= sessions[0].updated_at):
        return record.session_id
    return sessions[0].id if sessions else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
