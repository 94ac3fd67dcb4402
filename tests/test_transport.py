"""How the stdio transport reads and classifies each inbound line, and tells when its first answer is out."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

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
            os.close(in_write)  # end of input: the reader stops
        assert [message async for message in read_stream] == []
    for end in (stdin, stdout):
        end.close()
    os.close(out_read)


# Three requests and three bad lines, split at awkward places: a line cut in two, a ``\r\n``
# ending, a blank line, and a last request with no newline at all.
INPUT_CHUNKS = [
    b'{"jsonrpc": "2.0", "id": 1, "meth',
    b'od": "ping"}\r\nnot json\n\n[1]\n{"jsonrpc": "2.0", "id": "two", "method": "ping"}\n',
    b'{"jsonrpc": "2.0", "id": 3.5, "method": "ping"}\n',
    b'{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}',
]


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["pipe", "file"])
async def test_stdin_from_a_pipe_or_a_file_gives_every_message_in_order(source: str, tmp_path: Path) -> None:
    """A pipe (as hosts run us) is read by the event loop, a file by the reader thread; both
    deliver the same messages and answer the same bad lines."""
    out_read, out_write = os.pipe()
    stdout = os.fdopen(out_write, "wb", buffering=0)
    if source == "file":
        (tmp_path / "in.jsonl").write_bytes(b"".join(INPUT_CHUNKS))
        stdin = (tmp_path / "in.jsonl").open("rb")
        in_write = None
    else:
        in_read, in_write = os.pipe()
        stdin = os.fdopen(in_read, "rb")
    async with stdio_transport(stdin, stdout) as (read_stream, write_stream), read_stream, write_stream:
        threads = {thread.name for thread in threading.enumerate()}
        assert ("mcp-stdin" in threads) == (source == "file")
        if in_write is not None:
            for chunk in INPUT_CHUNKS:
                os.write(in_write, chunk)
                await anyio.sleep(0.01)  # usually one read per chunk; the order holds either way
            os.close(in_write)
        with anyio.fail_after(30):
            ids = [message.message.id async for message in read_stream]  # type: ignore[union-attr]
    stdout.close()
    stdin.close()
    errors = [json.loads(line) for line in os.read(out_read, 65536).splitlines()]
    os.close(out_read)
    assert ids == [1, "two", 3]
    assert [(e["id"], e["error"]["code"]) for e in errors] == [
        (None, PARSE_ERROR),
        (None, INVALID_REQUEST),
        (None, INVALID_REQUEST),
    ]
