"""The HTTP server's bounds: read from the environment, and fitted to the open-file limit.

The ``MCP_OLLAMA_HTTP_*`` rows of ``SETTINGS_SPEC`` are environment-only, and ``config.load`` does
not read them yet: ``http_settings`` does, for ``serve --http`` only (``cli/http.py``), with the
same rules and error messages as ``config.load`` (a bad value names its variable). Kept free of the
MCP SDK and of uvicorn so the CLI can refuse a bad value before paying for those imports.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Mapping
from typing import Any

from ..config import SETTINGS_SPEC, Secret, Settings, SettingsError

__all__ = ["FD_RESERVE", "MIN_TOKEN_CHARS", "connection_budget", "http_settings"]

logger = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
"""Shorter operator tokens are refused: the token is all that stands between the network and ``local``."""
FD_RESERVE = 256
"""Open files kept free of client connections: the listening socket, the database, connections to
Ollama, threads' pipes, and connections accepted but not yet counted or refused (asyncio accepts a
whole listen backlog at once, and a refused one holds its descriptor until it is closed). Measured
on a 2-core machine: a flood of 3,000 half-open connections held the 512 admitted ones plus 218 at
the peak. Without the reserve the process runs out of descriptors before its connection cap, and
asyncio then logs a traceback for every failed ``accept()``."""

_FLOATS = ("http_header_timeout", "http_body_timeout", "http_keep_alive")
_INTS = ("http_max_connections", "http_max_connections_per_address", "http_max_body_bytes")


def http_settings(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """``settings`` with the ``MCP_OLLAMA_HTTP_*`` values of ``environ`` applied.

    Raises ``SettingsError`` naming the variable whose value is unusable.
    """
    specs = {spec.name: spec for spec in SETTINGS_SPEC}
    values: dict[str, Any] = {}
    for name in (*_FLOATS, *_INTS):
        raw = environ.get(specs[name].env, "").strip()
        if raw:
            values[name] = _positive(specs[name].env, raw, float if name in _FLOATS else int)
    token = environ.get(specs["http_token"].env, "")
    if token:
        if len(token) < MIN_TOKEN_CHARS or token != token.strip() or any(c.isspace() for c in token):
            # The value itself is never part of the message: it is a credential.
            raise SettingsError(
                f"{specs['http_token'].env}: use {MIN_TOKEN_CHARS} characters or more, without spaces "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
            )
        values["http_token"] = Secret(token)
    return dataclasses.replace(settings, **values)


def _positive(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}: {raw!r} is not {what}") from None
    if not number > 0 or not math.isfinite(number):
        raise SettingsError(f"{name}: must be a number greater than 0, got {raw!r}")
    return number


def connection_budget(wanted: int) -> int:
    """How many client connections the open-file limit allows, up to ``wanted``.

    The soft limit is raised towards the hard one when ``wanted`` needs it (an unprivileged
    process may); when even that is too little, the cap is lowered, once, with a warning, so that
    a flood meets a 503 instead of ``EMFILE``.
    """
    if sys.platform == "win32":  # no such limit to fit
        return wanted
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.info("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    allowed = max(1, soft - FD_RESERVE)
    logger.warning(
        "the open-file limit (%d) leaves room for %d connections, not %d: more are answered 503; "
        "raise it with ulimit -n, or lower MCP_OLLAMA_HTTP_MAX_CONNECTIONS",
        soft,
        allowed,
        wanted,
    )
    return allowed
