"""Who may reach the HTTP server: the loopback rule, and the Host and Origin allowlists.

Kept apart from ``http.py`` (and free of the MCP SDK) so the CLI can refuse a bad bind at once,
before paying for the SDK import.

``allowed_hosts``/``allowed_origins`` are the SDK's pattern lists (``http://localhost:*``), which the
SDK matches by string prefix: ``http://localhost:1@evil.com`` starts with ``http://localhost:`` and
passes. ``Allowlist`` parses a header into (scheme, host, port) first and compares the parts, so
userinfo, paths and odd ports never get through; ``http.py`` checks it before the SDK's own check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import McpOllamaError

__all__ = [
    "Allowlist",
    "ExposureError",
    "allowed_hosts",
    "allowed_origins",
    "check_exposure",
    "is_loopback",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


class ExposureError(McpOllamaError):
    """The HTTP server would be reachable beyond this machine without any token."""


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` (an address or ``localhost``) only listens on this machine."""
    if bind.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(bind: str, tokens_file: str | None) -> None:
    """Raise ``ExposureError`` for a bind address beyond loopback with no tokens file.

    Without a tokens file the only token is the operator's, which acts as this machine's own user
    (``local``: every stdio conversation); it is for this machine, not for a network.
    """
    if tokens_file is None and not is_loopback(bind):
        raise ExposureError(
            f"refusing to listen on {bind or 'every address'} without --tokens-file: the only token "
            "would be the operator's, and whoever holds it reads every conversation of this machine's "
            "own user. Give each client its own token with 'mcp-ollama tokens add NAME --tokens-file "
            "PATH' and pass --tokens-file PATH, or listen on 127.0.0.1 (the default)."
        )


def _host_form(host: str) -> str:
    """How ``host`` appears in a Host header: IPv6 addresses in brackets."""
    bare = host.strip("[]")
    try:
        return f"[{bare}]" if ipaddress.ip_address(bare).version == 6 else bare
    except ValueError:
        return host.lower()


def _names(bind: str, extra: Iterable[str]) -> list[str]:
    names = [_host_form(name) for name in LOOPBACK_NAMES]
    if bind not in _WILDCARDS and not is_loopback(bind):
        names.append(_host_form(bind))
    names += [_host_form(host.strip()) for host in extra if host.strip()]
    return list(dict.fromkeys(names))


def allowed_hosts(bind: str, extra: Sequence[str] = ()) -> list[str]:
    """Host header values accepted: loopback names, the bind address, and ``extra`` (any port)."""
    hosts: list[str] = []
    for name in _names(bind, extra):
        hosts += [name, f"{name}:*"] if not _has_port(name) else [name]
    return hosts


def allowed_origins(bind: str, extra: Sequence[str] = ()) -> list[str]:
    """Origin header values accepted: the same names, over http or https (a TLS proxy in front)."""
    origins: list[str] = []
    for name in _names(bind, extra):
        for scheme in ("http", "https"):
            origins += [f"{scheme}://{name}"] + ([] if _has_port(name) else [f"{scheme}://{name}:*"])
    return origins


def _has_port(name: str) -> bool:
    return name.rsplit("]", 1)[-1].count(":") == 1 if name.startswith("[") else name.count(":") == 1


_NETLOC = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+)\]"  # an IPv6 address, in brackets as in URLs and Host headers
    r"|(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"  # a name or an IPv4 address
)
_PORT = re.compile(r"[0-9]{1,5}")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<netloc>[^/?#@\\\s]+)", re.IGNORECASE)
"""An Origin is ``scheme://host[:port]`` and nothing else: no userinfo, path, query or fragment."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normal_host(host: str) -> str:
    """One spelling per host: lower case, IP addresses in their canonical form, no brackets."""
    bare = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        return bare


def _split_netloc(netloc: str) -> tuple[str, int | None] | None:
    """``(host, port)`` from ``host``, ``host:port`` or ``[v6]:port``; None for anything else."""
    host_part, port_part = netloc, None
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host_part, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_part = rest[1:]
    elif ":" in netloc:
        host_part, port_part = netloc.rsplit(":", 1)
    match = _NETLOC.fullmatch(host_part)
    if match is None:
        return None
    if match["v6"] is not None:
        try:
            if ipaddress.ip_address(match["v6"]).version != 6:
                return None
        except ValueError:
            return None
    port: int | None = None
    if port_part is not None:
        if not _PORT.fullmatch(port_part) or not 0 < int(port_part) <= 65535:
            return None
        port = int(port_part)
    return _normal_host(host_part), port


@dataclass(frozen=True)
class Allowlist:
    """The hosts a request may name, each with any port (None) or one port; checked part by part."""

    entries: frozenset[tuple[str, int | None]]

    @classmethod
    def for_bind(cls, bind: str, extra: Sequence[str] = ()) -> Allowlist:
        """Loopback names, the bind address and ``extra`` (as ``allowed_hosts`` lists them)."""
        entries = {_split_netloc(name) for name in _names(bind, extra)}
        return cls(frozenset(entry for entry in entries if entry is not None))

    def _allows(self, host: str, port: int | None) -> bool:
        return (host, None) in self.entries or (port is not None and (host, port) in self.entries)

    def host_ok(self, value: str | None) -> bool:
        """Whether a Host header names an allowed host (a missing or malformed one is not)."""
        parts = _split_netloc(value.strip()) if value else None
        return parts is not None and self._allows(*parts)

    def origin_ok(self, value: str | None) -> bool:
        """Whether an Origin header is absent (not a browser's cross-site request) or allowed.

        ``null`` (a sandboxed or file: page) and anything with userinfo, a path or a bad port is
        refused; a missing port is the scheme's default, so it must be allowed with any port.
        """
        if value is None:
            return True
        match = _ORIGIN.fullmatch(value.strip())
        parts = _split_netloc(match["netloc"]) if match else None
        if match is None or parts is None:
            return False
        host, port = parts
        return self._allows(host, port if port is not None else _DEFAULT_PORTS[match["scheme"].lower()])
