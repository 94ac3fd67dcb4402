"""``mcp-ollama`` and ``mcp-ollama serve``: MCP on stdin/stdout, as hosts run it.

Started by hand in a terminal it would sit silent, waiting for JSON-RPC; it says so on stderr
first, and how to chat from the terminal instead.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import anyio

from ..config import Settings

TTY_HINT = (
    "mcp-ollama: this is an MCP server. It is waiting for an MCP host (Claude Desktop, Claude Code, "
    "the MCP Inspector) to speak JSON-RPC on stdin, and prints nothing until one does.\n"
    "To chat from this terminal instead, try:\n"
    '    mcp-ollama ask "Hello"\n'
    "See mcp-ollama --help for every command. Ctrl-D or Ctrl-C stops the server."
)


def serve(settings: Settings) -> int:
    """Serve MCP on stdio until stdin closes or a signal stops it; always 0."""
    if _is_terminal(sys.stdin):
        print(TTY_HINT, file=sys.stderr, flush=True)
    with collector_paused():
        from ..server import serve as serve_stdio  # the SDK import is the bulk of start-up

        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(serve_stdio, settings, backend_options=loop_options())
    return 0


def loop_options() -> dict[str, Any]:
    """``anyio.run``'s backend options for the serving commands: uvloop where it is installed
    (a dependency everywhere but Windows), asyncio's own loop otherwise.

    On the bench machine uvloop takes 0.15-0.3 ms off the server's 2.3-3 ms of CPU per ``chat``
    (5-10 %), for 5 ms more start-up. The one-shot commands (``ask``, ``doctor``, ``pull``)
    keep asyncio's loop: they run a handful of requests, and would pay the import for nothing.
    """
    if sys.platform == "win32":
        return {}
    try:
        import uvloop  # noqa: F401  (anyio imports it again by name)
    except ImportError:
        return {}
    return {"use_uvloop": True}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off from here (before the SDK's import) until the server is built:
    ``settle_heap()`` resumes it then; this does on the way out, should the start fail."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed, or no descriptor at all
        return False
