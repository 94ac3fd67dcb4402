"""How ``OllamaClient`` maps httpx's and the OS's failures, and an error response's text, onto the
error tree: once, here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from ..backend_errors import OllamaTimeout, OllamaUnreachable, StreamError
from .ndjson import CLOSED_EARLY, ERROR_TEXT_LIMIT, clip


@contextmanager
def translate_errors(url: str, read_timeout: float) -> Iterator[None]:
    """Turn httpx's and the OS's exceptions into ours, for the server at ``url``: the one place where
    that happens (``OllamaClient`` and its streams use it)."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise OllamaUnreachable(url, "connection attempt timed out") from exc
    except httpx.TimeoutException as exc:  # read, write or pool timeout
        raise OllamaTimeout(url, read_timeout) from exc
    except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise OllamaUnreachable(url, describe(exc)) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        raise StreamError(url, CLOSED_EARLY) from exc
    except httpx.TransportError as exc:  # proxy or local protocol trouble
        raise OllamaUnreachable(url, describe(exc)) from exc
    except httpx.HTTPError as exc:  # undecodable content-encoding and the like
        raise StreamError(url, f"unreadable response: {describe(exc)}") from exc
    except OSError as exc:
        raise OllamaUnreachable(url, describe(exc)) from exc


def error_text(response: httpx.Response) -> str:
    """Ollama's ``{"error": ...}`` text, else the raw body (truncated), else the reason phrase."""
    try:
        data = response.json()
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return clip(str(data["error"]))
    text = response.content.decode("utf-8", "replace").strip()
    return text[:ERROR_TEXT_LIMIT] or response.reason_phrase or "no error text"


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
