"""`doctor`'s look at a PostgreSQL database (reachable, schema version, latency); changes nothing."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg

from ...errors import StoreError
from .diagnose import describe_pg_error
from .migrations import MIGRATIONS, read_applied


def inspect_postgres(conninfo: str, password: str | None, shown: str) -> tuple[bool, str]:
    """Whether the server could use the PostgreSQL database, and why, without changing anything.

    Reachable, the schema version (or empty: it will be created at the first start), sessions,
    and the round-trip latency (median of five ``SELECT 1``).
    """
    kwargs: dict[str, Any] = {"connect_timeout": 5, "autocommit": True}
    if password is not None:
        kwargs["password"] = password
    try:
        with psycopg.connect(conninfo, **kwargs) as conn:
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                samples.append(time.perf_counter() - start)
            latency = statistics.median(samples) * 1000
            version = conn.info.server_version
            schema, applied = read_applied(conn, shown)
            count = 0
            if applied:
                row = conn.execute("SELECT count(*) FROM sessions").fetchone()
                count = int(row[0]) if row else 0
    except StoreError as exc:
        return False, exc.cause
    except psycopg.Error as exc:
        return False, describe_pg_error(exc)
    server = f"PostgreSQL {version // 10000}.{version % 10000} at {shown}, {latency:.2f} ms a round trip"
    if not applied:
        return True, f"{server}; schema {schema!r} is empty: its tables are created at the first start"
    pending = len(MIGRATIONS) - len(applied)
    schema_state = f"schema {schema!r} at migration {len(applied)} of {len(MIGRATIONS)}" + (
        f" ({pending} to apply at the next start)" if pending else ""
    )
    return True, f"{server}; {schema_state}, {count} sessions"
