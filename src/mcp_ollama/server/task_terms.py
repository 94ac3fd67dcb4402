"""The terms of a task in both protocol eras: which tools may run as one, the lifetimes granted,
the polling interval suggested, the one answer for a task nobody may see, the requesters' names,
and a tool result as a task's JSON. ``taskbook`` keeps the tasks; ``tasks``, ``tasks_legacy`` and
``tasks_modern`` speak them.
"""

from __future__ import annotations

import itertools
import weakref
from datetime import UTC, datetime
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult

TASK_TOOLS = frozenset({"chat", "pull_model"})
"""Tools that may run as tasks (``execution.taskSupport: "optional"``)."""
DEFAULT_TTL_MS = 3_600_000
"""A task's lifetime when the requester names none (the official client never does)."""
MAX_TTL_MS = 86_400_000
"""The longest lifetime granted; longer requests are cut to this."""
POLL_INTERVAL_MS = 1_000
"""The polling interval suggested to requesters."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def granted_ttl(requested: object) -> int:
    """The lifetime granted for a requested ``ttl`` (ms); -32602 for one that is not a count."""
    if requested is None:
        return DEFAULT_TTL_MS
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise MCPError(code=INVALID_PARAMS, message="task.ttl must be a non-negative integer (milliseconds)")
    return min(requested, MAX_TTL_MS)


def not_found(task_id: str) -> MCPError:
    """The answer for an unknown, expired or someone else's task: always the same."""
    return MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found")


class Requesters:
    """Names for the connections and pipes that ask for tasks, one per object, for one server.

    Held weakly: a connection that has closed drops its name with it.
    """

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self._serial = itertools.count(1)

    def name(self, key: object, prefix: str) -> str:
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = f"{prefix}{next(self._serial)}"
        return found


def result_json(result: CallToolResult) -> dict[str, Any]:
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    dumped.pop("resultType", None)
    return dumped
