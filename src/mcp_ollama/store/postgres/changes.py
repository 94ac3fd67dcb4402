"""Changes one replica publishes for the others' subscribers: PostgreSQL NOTIFY and LISTEN.

A replica that stores a turn (or deletes or clears a session) tells its own subscribers, then
publishes the change on the schema's channel; every other replica hears it on a connection of its
own and tells its subscribers in turn. A notification is delivered only to replicas listening at
the time: one that was down missed it, and its clients read the resource anew when they return.
"""

from __future__ import annotations

import json
import logging
import time

import psycopg

from ..protocol import Change
from .base import PgBase

logger = logging.getLogger(__name__)


class PgChanges(PgBase):
    """``publish`` and ``changes``: the ``Store`` protocol's replica half."""

    def publish(self, change: Change) -> bool:
        payload: dict[str, object] = {"from": self._replica, "principal": change.principal}
        payload |= {"uri": change.uri, "list": change.list_changed, "cancel": change.cancel}
        if change.reason is not None:
            payload["reason"] = change.reason
        with self._transaction() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, json.dumps(payload)))
        return True

    def changes(self, timeout: float) -> list[Change] | None:
        """What the other replicas published, waiting up to ``timeout`` s for the first.

        One caller at a time (the server's relay task). A broken connection is opened anew at the
        next call; meanwhile this returns nothing, after waiting ``timeout``.
        """
        if self._closed:
            return None
        try:
            if self._listen_conn is None or self._listen_conn.closed:
                conn = self._connect()
                conn.execute(f"LISTEN {self._channel}")  # a name we made: hex digits, no quoting needed
                self._listen_conn = conn
            conn = self._listen_conn
            notes = list(conn.notifies(timeout=timeout, stop_after=1))
            if notes:  # and whatever else is already there
                notes += conn.notifies(timeout=0.001)
        except psycopg.Error as exc:
            if self._closed:
                return None
            logger.warning("could not hear the other replicas' changes (%s); trying again", exc)
            self._listen_conn = None
            time.sleep(timeout)
            return []
        return [change for note in notes if (change := self._parse(note.payload)) is not None]

    def _parse(self, payload: str) -> Change | None:
        try:
            data = json.loads(payload)
            if data["from"] == self._replica:
                return None
            cancel, reason = data.get("cancel"), data.get("reason")
            return Change(
                str(data["principal"]),
                str(data["uri"]),
                bool(data["list"]),
                str(cancel) if cancel else None,
                str(reason) if reason else None,
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a change notification that is not ours: %.80r", payload)
            return None
