"""How the stdio transport classifies each inbound line, and tells when its first answer is out."""

from __future__ import annotations

import json
import os

import anyio
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, JSONRPCError, JSONRPCRequest

from mcp_ollama.transports.stdio import classify_line, stdio_transport


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        (b"not json", PARSE_ERROR, None),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', PARSE_ERROR, None),
        (b"[1, 2]", INVALID_REQUEST, None),
        (b"42", INVALID_REQUEST, None),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', INVALID_REQUEST, None),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', INVALID_REQUEST, None),
        (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', INVALID_REQUEST, None),
        (b'{"jsonrpc": "2.0", "id": 3, "method": 7}', INVALID_REQUEST, 3),
        (b'{"jsonrpc": "1.0", "id": "a", "method": "ping"}', INVALID_REQUEST, "a"),
        (b'{"jsonrpc": "2.0", "id": 4, "method": "ping", "params": "x"}', INVALID_REQUEST, 4),
        (b'{"hello": "world"}', INVALID_REQUEST, None),
        (b"[" * 100_000, PARSE_ERROR, None),
    ],
)
def test_bad_lines_get_error_responses(line: bytes, code: int, request_id: object) -> None:
    result = classify_line(line)
    assert isinstance(result, JSONRPCError)
    assert result.error.code == code
    assert result.id == request_id


@pytest.mark.parametrize(
    "line",
    [b"", b"   \n", b'{"jsonrpc": "2.0", "method": 5}', b'{"jsonrpc": "2.0", "method": "x", "params": 1}'],
)
def test_blank_lines_and_malformed_notifications_get_no_answer(line: bytes) -> None:
    assert classify_line(line) is None


def test_valid_messages_pass_through() -> None:
    result = classify_line(b'{"jsonrpc": "2.0", "id": "r1", "method": "tools/list"}\n')
    assert isinstance(result, SessionMessage)


@pytest.mark.anyio
async def test_first_written_is_set_once_the_first_message_is_on_the_pipe() -> None:
    """``serve`` holds the model's preload until the ``initialize`` answer is out."""
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    written = anyio.Event()
    ping = SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=1, method="ping"))
    stdin, stdout = os.fdopen(in_read, "rb"), os.fdopen(out_write, "wb", buffering=0)
    transport = stdio_transport(stdin, stdout, first_written=written)
    async with transport as (read_stream, write_stream), read_stream, write_stream:
        try:
            assert not written.is_set()
            await write_stream.send(ping)
            with anyio.fail_after(30):
                await written.wait()
            line = b""
            while not line.endswith(b"\n"):
                line += os.read(out_read, 65536)
            assert json.loads(line) == {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        finally:
            os.close(in_write)  # end of input: the reader thread leaves readline()
        assert [message async for message in read_stream] == []
    for end in (stdin, stdout):
        end.close()
    os.close(out_read)
