"""Who may reach the HTTP server: the loopback rule, and the Host and Origin allowlists.

Kept apart from ``http.py`` (and free of the MCP SDK) so the CLI can refuse a bad bind at once,
before paying for the SDK import.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from ..errors import McpOllamaError

__all__ = ["ExposureError", "allowed_hosts", "allowed_origins", "check_exposure", "is_loopback"]

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
    """Raise ``ExposureError`` for a bind address beyond loopback with no tokens file."""
    if tokens_file is None and not is_loopback(bind):
        raise ExposureError(
            f"refusing to listen on {bind or 'every address'} without --tokens-file: anyone who can "
            "reach it could use the models and read every conversation. Create a token with "
            "'mcp-ollama tokens add NAME --tokens-file PATH' and pass --tokens-file PATH, or listen on "
            "127.0.0.1 (the default)."
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
