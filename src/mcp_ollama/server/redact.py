"""Error text for remote principals: the same sentences, without the Ollama servers' addresses.

A team member with a token has no business learning where the models run (an internal host, a
port, a proxy's path); the operator (``local``) does, to fix things, and the server's log keeps
the full text. The backend errors name their server (``errors.BackendError`` subclasses keep it in
``url``; the pool joins several with commas), and a detail from the network library may name it
again in another spelling (``('10.0.0.7', 11434)``), so every spelling is removed: the configured
URLs, their host names, and anything shaped like a URL or an IP address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import BackendError, McpOllamaError, StoreError

__all__ = ["HIDDEN", "hide_addresses", "public_message"]

HIDDEN = "(address hidden)"
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s,;)\]'\"<>]+", re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b")
_IPV6 = re.compile(
    r"\[(?P<inner>[0-9A-Fa-f:.]+)\](?::\d{1,5})?"  # [v6]:port, as in URLs
    r"|(?<![\w:.])(?P<bare>[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]+)(?:%[\w.-]+)?"  # bare, maybe with a zone
)
"""A candidate only: it is hidden if it parses as an IPv6 address (a clock time does not)."""
_SOCKET_ADDRESS = re.compile(r"\(\s*'[^'()]*'\s*,\s*\d{1,5}\s*(?:,\s*\d+\s*){0,2}\)")
"""How Python prints a socket address in an OSError: ``('10.0.0.7', 11434)``."""
_AT = re.compile(r"(Ollama) at " + re.escape(HIDDEN) + r"(?:, " + re.escape(HIDDEN) + r")*")


def _spellings(urls: Iterable[str]) -> list[str]:
    """Each URL, its host[:port] and its bare host (not loopback names: they say nothing)."""
    found: set[str] = set()
    for raw in urls:
        for url in (part.strip() for part in raw.split(",")):
            if not url:
                continue
            found.add(url)
            found.add(url.rstrip("/"))
            parts = urlsplit(url if "://" in url else f"http://{url}")
            if parts.netloc:
                found.add(parts.netloc.rsplit("@", 1)[-1])
            host = parts.hostname or ""
            if host and host != "localhost":
                try:
                    ipaddress.ip_address(host)  # IP addresses are caught by the patterns below
                except ValueError:
                    found.add(host)
    return sorted(found, key=len, reverse=True)  # longest first: a URL before the host inside it


def hide_addresses(text: str, urls: Iterable[str]) -> str:
    """``text`` with ``urls`` (in any spelling) and any URL or IP address replaced by ``HIDDEN``."""
    text = _URL.sub(HIDDEN, text)  # first: a whole URL, path and all, rather than the host in it
    for spelling in _spellings(urls):
        text = re.sub(rf"(?<![\w.-]){re.escape(spelling)}(?![\w-])", HIDDEN, text)
    text = _SOCKET_ADDRESS.sub(HIDDEN, text)
    text = _IPV6.sub(_hide_ipv6, text)
    text = _IPV4.sub(HIDDEN, text)
    return _AT.sub(r"\1", text)  # "Cannot reach Ollama at (address hidden)" reads as "... Ollama"


def _hide_ipv6(match: re.Match[str]) -> str:
    candidate = match["inner"] or match["bare"]
    try:
        ipaddress.IPv6Address(candidate.split("%", 1)[0])
    except ValueError:
        return match[0]
    return HIDDEN


def public_message(exc: McpOllamaError, urls: Iterable[str]) -> str:
    """What a remote principal is told about ``exc``: the message, minus what only the operator needs."""
    if isinstance(exc, StoreError):  # its text names a file on the server
        return "The server's session database could not be used; the server's log says why."
    text = str(exc)
    if isinstance(exc, BackendError):
        text = hide_addresses(text, [*urls, str(getattr(exc, "url", ""))])
    return text
