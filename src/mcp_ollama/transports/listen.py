"""Whether ``serve --http`` can listen on its address and port, asked before anything starts.

uvicorn finds out only after the server's lifespan has started (the store open, the model being
preloaded), then logs the raw ``OSError`` and exits 3. Binding a probe socket first, as asyncio's
``create_server`` binds (``SO_REUSEADDR`` on POSIX, IPv6 sockets IPv6-only), turns a port in use
into one sentence with its fix, before any of that.
"""

from __future__ import annotations

import errno
import socket
import sys

from ..errors import McpOllamaError

PORT_FLAG = "--port N (MCP_OLLAMA_PORT)"


class ListenError(McpOllamaError):
    """``serve --http`` cannot listen where it was told to: the port is taken, or not allowed."""


def check_listen(host: str, port: int) -> None:
    """Raise ``ListenError`` (one sentence, with the fix) unless ``host``:``port`` can be listened on."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(
            f"Cannot listen on {host}: the name does not resolve ({exc.strerror}); give --bind an "
            "address of this machine (127.0.0.1 by default)."
        ) from exc
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            if sys.platform != "win32":  # on Windows SO_REUSEADDR would let the probe share a taken port
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ListenError(_why(host, port, exc)) from exc


def _why(host: str, port: int, exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return (
            f"Port {port} on {host} is already in use (another `mcp-ollama serve --http`, or another "
            f"program): stop that, or choose another port with {PORT_FLAG}."
        )
    if exc.errno in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
        return (
            f"Not allowed to listen on port {port} of {host} (ports below 1024 need administrator "
            f"rights, or another program holds it): choose another port with {PORT_FLAG}."
        )
    return (
        f"Cannot listen on {host}:{port} ({exc.strerror or exc}): give --bind an address of this "
        f"machine (127.0.0.1 by default), or another port with {PORT_FLAG}."
    )
