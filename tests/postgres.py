"""The local PostgreSQL for the tests: a fresh schema per test, and what to do where there is none.

Tests reach PostgreSQL at ``TEST_POSTGRES_URL`` (default: the development and CI machines' server,
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Each test gets a schema of its own,
named ``t_<random>``, chosen through the URL's ``search_path``, and dropped afterwards. Where no
PostgreSQL answers, the tests skip with one sentence; under ``CI=true`` they fail instead, since
CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def base_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL") or DEFAULT_URL


@cache
def unreachable() -> str | None:
    """Why the tests cannot use PostgreSQL, or None when they can (asked once per process)."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (the store needs it too)
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install -e '.[test]'"
    try:
        with psycopg.connect(base_url(), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def require_postgres() -> None:
    """Skip (fail under CI=true) unless the tests' PostgreSQL answers."""
    why = unreachable()
    if why is None:
        return
    sentence = (
        f"PostgreSQL is not reachable at {base_url()} ({why}); start it "
        "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set TEST_POSTGRES_URL."
    )
    if os.environ.get("CI") == "true":
        pytest.fail(sentence)
    pytest.skip(sentence)


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(base_url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def schema_url(schema: str) -> str:
    separator = "&" if "?" in base_url() else "?"
    return f"{base_url()}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped (with everything in it) on exit."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        admin(f"DROP SCHEMA {schema} CASCADE")


def pg_raw(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders, as in SQLite) on a separate connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params or None)
        return cur.fetchall() if cur.description is not None else []
