"""Telling Ollama's answers from another program's at its address, and short previews of bodies.

Ollama speaks JSON (and NDJSON), errors included; a web page there (``OLLAMA_HOST`` pointing at
a web server, a proxy's error page) is named as such in one sentence: the status, the content
type and the page's first characters, never the whole page.
"""

from __future__ import annotations

import re

import httpx

from ..backend_errors import NotOllama

_PREVIEW_LIMIT = 100
OPENING_CHARS = 80
"""How much of a foreign page an error quotes."""
_SPACE = re.compile(r"\s+")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def speaks_html(response: httpx.Response) -> bool:
    """Whether the response says it is a web page (its content type)."""
    return "html" in response.headers.get("content-type", "").lower()


def refuse_foreign(response: httpx.Response, url: str) -> None:
    """Raise ``NotOllama`` if the (read) response is a web page: by its content type, or a body
    that opens with ``<`` (Ollama's bodies open with ``{``)."""
    body = response.content
    if not speaks_html(response) and body.lstrip()[:1] != b"<":
        return
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    raise NotOllama(response.status_code, content_type, opening(body), url)


def opening(body: bytes, limit: int = OPENING_CHARS) -> str:
    """The first ``limit`` characters of ``body`` as one line: whitespace runs as one space, no
    control characters (they could drive a terminal), ``…`` where it was cut."""
    text = _SPACE.sub(" ", body[: limit * 8].decode("utf-8", "replace")).strip()
    text = _UNPRINTABLE.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _preview(raw: bytes | bytearray) -> str:
    return bytes(raw[: _PREVIEW_LIMIT * 4]).decode("utf-8", "replace")[:_PREVIEW_LIMIT]
