"""How the stdio transport classifies each inbound line."""

from __future__ import annotations

import pytest
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, JSONRPCError

from mcp_ollama.transports.stdio import classify_line


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
