"""What a request waiting for a job uses: ``follow`` relays its progress (``job.Handoff`` stores its turn)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from .job import Job

logger = logging.getLogger(__name__)

Report = Callable[[float, str], Awaitable[None]]
"""Send one progress notification: a strictly increasing value and a message."""


async def follow(job: Job, report: Report, interval: float) -> None:
    """Relay ``job``'s progress through ``report`` until it ends: at once, then on each change.

    At most one notification every ``interval`` seconds. The value is the count of pieces
    (thinking and answer), nudged up by thousandths where needed so that it strictly increases
    (the heartbeats before the first token do not change the count).
    """
    last_value, last_sent, sent_beats = -1.0, -math.inf, 0
    while not job.done:
        changed = job.changed
        if not job.message or (job.beats == sent_beats and job.progress <= last_value):
            await changed.wait()
            continue
        gap = last_sent + interval - time.monotonic()
        if gap > 0:
            await anyio.sleep(gap)  # then send whatever is newest by then
            continue
        value = float(job.progress) if job.progress > last_value else last_value + 0.001
        last_value, last_sent, sent_beats = value, time.monotonic(), job.beats
        try:
            await report(value, job.message)
        except Exception:  # a waiter that went away must not break anything
            logger.debug("a progress notification could not be sent", exc_info=True)
            return
