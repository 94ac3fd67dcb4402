"""A log that a flood cannot flood: each repeated warning or error once per interval, with a count.

Measured on a 2-core machine: with the open-file limit reached, asyncio logs a traceback for every
failed ``accept()`` of uvicorn's listening socket, about 100 MB of stderr in 40 seconds. A hostile
client can also make uvicorn warn once per bad request ("Invalid HTTP request received.") and the
SDK once per bad Host or Origin header. ``RepeatFilter``, on the handlers of the root logger while
``serve --http`` runs, lets the first record from each place through and counts the rest; the first
one after the interval carries the count of those dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["REPEAT_INTERVAL", "RepeatFilter", "filtering_repeats"]

REPEAT_INTERVAL = 60.0
"""Seconds between two records from the same place in the code."""
MAX_PLACES = 4096
"""Places remembered at most (they are lines of code, so few; the bound only guards memory)."""

_Key = tuple[str, int, str, int, str]


@dataclass
class _Seen:
    since: float
    dropped: int = 0


class RepeatFilter(logging.Filter):
    """Lets through the first WARNING-or-worse record from each place per ``interval`` seconds.

    A place is the logging call's logger, level, file and line, and the exception's type: not the
    message, because messages carry what a client sent (a Host header, an address), and a flood of
    distinct messages is still a flood. Records below WARNING pass untouched: INFO and DEBUG are
    asked for on purpose. ``clock`` is for tests.
    """

    def __init__(
        self, interval: float = REPEAT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._seen: dict[_Key, _Seen] = {}
        self._lock = threading.Lock()  # handlers call filters outside their own lock, from any thread

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc_type = record.exc_info[0] if record.exc_info else None
        key = (record.name, record.levelno, record.pathname, record.lineno, getattr(exc_type, "__name__", ""))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.since < self.interval:
                seen.dropped += 1
                return False
            if len(self._seen) >= MAX_PLACES:
                self._seen.clear()
            self._seen[key] = _Seen(now)
        if seen is not None and seen.dropped:
            # Formatted here, once: the handler's formatter then shows the count with the message.
            record.msg = (
                f"{record.getMessage()} [and {seen.dropped} more like this in the last "
                f"{now - seen.since:.0f} s, not shown]"
            )
            record.args = None
        return True


@contextmanager
def filtering_repeats(interval: float = REPEAT_INTERVAL) -> Iterator[RepeatFilter]:
    """A ``RepeatFilter`` on every handler of the root logger for the duration of the block.

    The handlers, not the loggers: a logger's filter sees only records logged on that very logger,
    while asyncio's, uvicorn's and the SDK's records all reach the root's handlers.
    """
    repeat = RepeatFilter(interval)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(repeat)
    try:
        yield repeat
    finally:
        for handler in handlers:
            handler.removeFilter(repeat)
