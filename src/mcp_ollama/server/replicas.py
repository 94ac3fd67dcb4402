"""Server replicas that share one store: resource changes told to all, a cancel sent to the owner.

``tell`` sends a session's change to this server's own subscribers, then publishes it through the
store; ``relay_changes`` (run for the server's life) hears what other replicas published: changes
for this server's subscribers, and requests to stop a job this server runs (``stop_elsewhere``,
``cancel_chat`` on a replica that does not run the job; ``tasks/cancel`` there, through
``task_records.cancel_elsewhere``). With SQLite nothing is published and the
relay returns at once; with PostgreSQL it is NOTIFY and LISTEN (``store.postgres.changes``).
"""

from __future__ import annotations

import logging
from functools import partial

import anyio
import anyio.to_thread
from mcp_types import CallToolResult

from ..core.jobs import Jobs
from ..store import Change, JobRecord, Store
from .peers import Peers
from .results import ChatCancel
from .state import AppState, session_uri, structured_result
from .taskbook import TaskBook

logger = logging.getLogger(__name__)

LISTEN_WAIT = 0.5
"""Seconds one look for other replicas' changes waits (also the longest it delays a shutdown)."""
STOPPED_ELSEWHERE = "cancelled with cancel_chat on another server replica"


async def _tell_here(peers: Peers, change: Change) -> None:
    if change.list_changed:
        await peers.resources_changed(change.principal)
    await peers.resource_updated(change.uri, change.principal)


async def tell(peers: Peers, store: Store, change: Change) -> None:
    """``change`` to this server's subscribers, then to the other replicas'."""
    await _tell_here(peers, change)
    if not store.shared_by_replicas:
        return  # nobody to tell, and a thread hop per stored turn is not free (issue 21)
    try:
        await anyio.to_thread.run_sync(store.publish, change)
    except Exception:  # the change is stored; other replicas' subscribers read it when they look
        logger.warning("could not tell the other replicas of a change to %s", change.uri, exc_info=True)


async def relay_changes(peers: Peers, store: Store, jobs: Jobs, tasks: TaskBook | None = None) -> None:
    """Until cancelled: what other replicas publish, to this server's subscribers, jobs and tasks."""
    while True:
        changes = await anyio.to_thread.run_sync(store.changes, LISTEN_WAIT)
        if changes is None:
            return  # nobody publishes through this store
        for change in changes:
            try:
                if change.cancel is None:
                    await _tell_here(peers, change)
                    continue
                job = jobs.get(change.cancel) or (tasks.job_of(change.cancel) if tasks is not None else None)
                if job is not None and job.cancel(change.reason or STOPPED_ELSEWHERE):
                    jobs.keep(job)  # its record ends as cancelled: the asking replica waits for that
            except Exception:
                logger.warning("could not relay a change to %s", change.uri, exc_info=True)


async def stop_elsewhere(state: AppState, sid: str, principal: str, grace: float) -> CallToolResult | None:
    """``cancel_chat`` for an answer another replica is writing: ask it to stop, through the store,
    and wait up to ``grace`` seconds for the job's record to say so. None: no other replica is
    writing one (or none could be asked: SQLite)."""
    store, owner = state.store, state.jobs.owner
    record = await anyio.to_thread.run_sync(partial(store.latest_job, sid, principal=principal))
    if record is None or record.status != "running" or record.owner == owner:
        return None
    if not await anyio.to_thread.run_sync(
        store.publish, Change(principal, session_uri(sid), cancel=record.id)
    ):
        return None
    found: JobRecord | None = record
    with anyio.move_on_after(grace):
        while found is not None and found.status == "running":
            await anyio.sleep(0.05)
            found = await anyio.to_thread.run_sync(store.get_job, record.id)
    if found is not None and found.status == "running":
        text = (
            f"Asked the server replica writing the answer in session {sid} to stop it; it has not "
            f"confirmed within {grace:g} s. Call chat_result to see whether it stopped."
        )
        return structured_result(text, ChatCancel(session_id=sid, cancelled=False, discarded_tokens=0))
    text = (
        f"Stopped the answer another server replica was writing in session {sid}. The session is as "
        "it was before that message."
    )
    return structured_result(text, ChatCancel(session_id=sid, cancelled=True, discarded_tokens=0))
