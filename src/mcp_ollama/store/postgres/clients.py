"""Learned client timeouts in PostgreSQL: the same methods as the SQLite store's ``clients``."""

from __future__ import annotations

from datetime import datetime

from ..records import LOCAL, _now, _parse_time
from .base import PgBase


class PgClientQueries(PgBase):
    """Learned client timeouts."""

    def client_timeout(self, client: str, *, principal: str = LOCAL) -> tuple[float, datetime] | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT seconds, learned_at FROM client_timeouts WHERE principal = %s AND client = %s",
                (principal, client),
            ).fetchone()
        return None if row is None else (float(row[0]), _parse_time(row[1]))

    def learn_client_timeout(self, client: str, seconds: float, *, principal: str = LOCAL) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO client_timeouts (principal, client, seconds, learned_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (principal, client) DO UPDATE SET seconds = EXCLUDED.seconds,"
                " learned_at = EXCLUDED.learned_at",
                (principal, client, seconds, _now()),
            )
