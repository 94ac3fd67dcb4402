"""Store work from async code: on the event loop when it waits for nobody, else in a worker thread.

Both stores are synchronous. Handing each call to a worker thread keeps a locked or slow database
from stalling the server, but a hand-off costs more than a SQLite turn itself, and under load the
event loop and the workers fight over the GIL: with 50 HTTP clients the server spent a third more
CPU per chat on it (issue 21). ``Store.now_or_not`` runs the work at once when that needs no
waiting (SQLite: the store's lock free, no other process writing); otherwise, and always for
PostgreSQL, it goes to a thread as before. Checkpoints, which sync to disk, run in a thread in
the background (``keep_checkpointing``), never on a request's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..store import NOT_NOW, Store

T = TypeVar("T")

CHECKPOINT_LOOK_SECONDS = 1.0
"""How often ``keep_checkpointing`` asks the store whether a checkpoint is due."""


async def run_store(store: Store, work: Callable[[], T]) -> T:
    """``work()``, which calls ``store``: at once when that waits for nobody, else in a worker thread.

    Like ``anyio.to_thread.run_sync``, it raises at once in a cancelled scope, before any of the work
    is done: a job its request cancelled must not store its turn on the way out.
    """
    await anyio.lowlevel.checkpoint_if_cancelled()
    done = store.now_or_not(work)
    if done is NOT_NOW:
        return await anyio.to_thread.run_sync(work)
    return done


async def keep_checkpointing(store: Store, interval: float = CHECKPOINT_LOOK_SECONDS) -> None:
    """Until cancelled: the store's checkpoint, in a worker thread, whenever one is due."""
    while True:
        await anyio.sleep(interval)
        if store.checkpoint_due():
            await anyio.to_thread.run_sync(store.checkpoint)
