"""``mcp-ollama`` and ``mcp-ollama serve``: MCP on stdin/stdout, as hosts run it.

Started by hand in a terminal it would sit silent, waiting for JSON-RPC; it says so on stderr
first, and how to chat from the terminal instead.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import TextIO

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
            anyio.run(serve_stdio, settings)
    return 0


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
