"""What the store keeps about MCP clients: how long each one waits for a tool call.

A client that gives up on a call cancels it with a reason naming its timeout; the server keeps
the time it waited, per principal and ``clientInfo`` name, and answers that client's next calls
before it (``server.patience``). One row per client, overwritten by each new observation.
"""

from __future__ import annotations

from datetime import datetime

from .base import StoreBase
from .records import LOCAL, _now, _parse_time


class ClientQueries(StoreBase):
    """Learned client timeouts."""

    def client_timeout(self, client: str, *, principal: str = LOCAL) -> tuple[float, datetime] | None:
        """How long ``client`` waited before it timed a call out, and when that was learned; or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seconds, learned_at FROM client_timeouts WHERE principal = ? AND client = ?",
                (principal, client),
            ).fetchone()
        return None if row is None else (float(row[0]), _parse_time(row[1]))

    def learn_client_timeout(self, client: str, seconds: float, *, principal: str = LOCAL) -> None:
        """``client`` timed a call out after ``seconds``: keep that, replacing what was known."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO client_timeouts (principal, client, seconds, learned_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (principal, client) DO UPDATE SET seconds = excluded.seconds,"
                " learned_at = excluded.learned_at",
                (principal, client, seconds, _now()),
            )
