"""What Windows and macOS hosts do differently, simulated on this machine.

CI runs on Linux. Windows' asyncio loop has no ``add_signal_handler`` and a Windows host may
end its lines with ``\\r\\n``; both are reproduced here with the real server as a subprocess.
``mypy --platform win32`` and ``--platform darwin`` in ``.ci/run`` catch POSIX-only APIs.
"""

from __future__ import annotations

import signal
import sys

import pytest

from mcp_ollama.config import Settings

from .fake_ollama import FakeOllama
from .rawstdio import RawServer
from .test_server_stdio import raw_env

# The server as `python -m mcp_ollama`, but with the event loop refusing signal handlers the
# way asyncio's loops on Windows do.
WINDOWS_LIKE_LOOP = (
    "-c",
    "import asyncio, sys\n"
    "def refuse(self, *args, **kwargs):\n"
    "    raise NotImplementedError\n"
    "asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = refuse\n"
    "from mcp_ollama.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n",
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="simulates Windows on a POSIX loop")


def test_server_starts_chats_and_exits_cleanly_without_loop_signal_handlers(
    settings: Settings, fake: FakeOllama
) -> None:
    with RawServer(raw_env(settings), launcher=WINDOWS_LIKE_LOOP) as server:
        init = server.initialize()
        assert init["result"]["serverInfo"]["name"] == "mcp-ollama"
        answer = server.request("tools/call", {"name": "chat", "arguments": {"message": "Hello?"}})
        assert answer["result"]["isError"] is False
        assert answer["result"]["structuredContent"]["answer"]
        server.close_stdin()
        assert server.wait(15) == 0
        assert server.stdout_is_pure_jsonrpc()
    assert b"Traceback" not in b"".join(server.stderr_raw)
    assert len(fake.chat_requests) == 1


def test_ctrl_c_still_stops_the_server_without_loop_signal_handlers(settings: Settings) -> None:
    with RawServer(raw_env(settings), launcher=WINDOWS_LIKE_LOOP) as server:
        server.initialize()
        assert server.request("ping")["result"] == {}
        server.proc.send_signal(signal.SIGINT)
        assert server.wait(15) == 0
        assert server.stdout_is_pure_jsonrpc()
    stderr = b"".join(server.stderr_raw)
    assert b"Traceback" not in stderr
    assert b"received SIGINT" in stderr


def test_crlf_lines_are_accepted_and_never_written(settings: Settings, fake: FakeOllama) -> None:
    with RawServer(raw_env(settings)) as server:
        server.send_raw(
            b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
            b'"capabilities":{},"clientInfo":{"name":"win","version":"0"}}}\r\n'
        )
        assert server.response(1)["result"]["protocolVersion"] == "2025-11-25"
        server.send_raw(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\r\n\r\n')
        server.send_raw(
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call",'
            b'"params":{"name":"chat","arguments":{"message":"line one\\r\\nline two"}}}\r\n'
        )
        result = server.response(2)["result"]
        assert result["isError"] is False
        server.send_raw(b"not json\r\n")
        reply = server.read()
        while "method" in reply:  # notifications (resources/list_changed for the new session)
            reply = server.read()
        assert reply["error"]["code"] == -32700
        server.close_stdin()
        assert server.wait(15) == 0
    assert fake.chat_requests[-1]["messages"][-1]["content"] == "line one\r\nline two"
    raw = b"".join(server.stdout_raw)
    assert b"\r" not in raw
    assert server.stdout_is_pure_jsonrpc()  # every line one JSON-RPC message, ended by \n alone
