"""Heartbeats: what a job says while it waits for its first token (queued behind the session's
previous answer, waiting for a slot, the model loading, the prompt being read).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import anyio

from ..errors import McpOllamaError
from .job import Job, JobState

PROBE_LIMIT = 2.0
"""Seconds a heartbeat waits to learn whether a job's model is loaded."""

Probe = Callable[[str], Awaitable[bool | None]]
"""Whether Ollama has ``model`` loaded now."""


async def beat_forever(jobs: Callable[[], Iterable[Job]], interval: float, probe: Probe | None) -> None:
    """Until a job's first token: a progress message every ``interval`` saying why it waits.

    One task for every job of ``jobs()``, waking four times an interval, rather than a timer per job.
    """
    while True:
        await anyio.sleep(interval / 4)
        now = time.monotonic()
        due = [j for j in jobs() if not j.done and not j.progress and now - j.last_beat >= interval]
        loaded: dict[str, bool | None] = {}
        for job in due:
            if job.state is JobState.QUEUED:
                message = "waiting for the previous answer in this session to finish…"
            elif job.slot_wait is not None:
                message = job.slot_wait
            else:
                if job.model not in loaded:
                    loaded[job.model] = await _is_loaded(probe, job.model)
                if loaded[job.model] is False:
                    message = f"loading {job.model}…"
                else:
                    message = f"reading the prompt ({job.prompt_tokens:,} tokens)…"
            if job.progress or job.done:
                continue
            job.last_beat = time.monotonic()
            job.beats += 1
            job._change(job.state, message)


async def _is_loaded(probe: Probe | None, model: str) -> bool | None:
    if probe is None:
        return None
    try:
        # Not tied to the heartbeat interval: a short interval on a busy machine would time
        # out every probe and report a loading model as reading the prompt.
        with anyio.fail_after(PROBE_LIMIT):
            return await probe(model)
    except (McpOllamaError, TimeoutError):
        return None
