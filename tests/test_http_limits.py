"""``serve --http`` against hostile and broken clients, from the attacker's side, over real sockets.

Three real server processes on loopback: ``tight`` (no tokens file, 1 s header, body and
keep-alive deadlines, at most 1,024 open files), ``roomy`` (no tokens file, long deadlines, 8
connections per address) and ``team`` (a tokens file, an operator token from
``MCP_OLLAMA_HTTP_TOKEN``, and an Ollama address where nothing listens). Nothing here measures
time: each test waits for a condition, with a limit far beyond what the server needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mcp_ollama.transports.auth import add_token, hash_token
from mcp_ollama.transports.logflood import RepeatFilter

from .conftest import INITIALIZE, MCP_HEADERS, free_port
from .fake_ollama import FakeOllama

READY_LIMIT = 60.0
"""Generous: a loaded CI machine may take long to import the SDK; the loop returns once it is up."""
CLOSE_LIMIT = 60.0
"""How long a test waits for the server to close a connection it should close after 1 s."""
RECOVERY_LIMIT = 120.0
"""How long a token holder may keep retrying while a flood is being cleared."""
STDERR_LIMIT = 1_000_000
"""Bytes of log a flood may cause at most (the old server wrote about 2.4 MB a second)."""
OPEN_FILES = 1024
FLOOD = 1_100
"""Half-sent connections in the flood: more than the server's open-file limit."""
PER_ADDRESS = 8
OPERATOR_TOKEN = "operator-" + "x" * 32


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    token: str
    """The token printed at start (when none was, a placeholder that no server accepts)."""

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token if token is not None else self.token}"}

    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()


def _start(
    root: Path,
    ollama_url: str,
    *,
    env: dict[str, str],
    tokens_file: Path | None = None,
    open_files: int | None = None,
) -> Server:
    """``serve --http`` in a child process (its open-file limit set first), stderr to a file."""
    port = free_port()
    argv = ["serve", "--http", "--port", str(port), "--db", str(root / "s.sqlite3")]
    argv += ["--ollama-host", ollama_url, "--preload", "off"]
    if tokens_file is not None:
        argv += ["--tokens-file", str(tokens_file)]
    # The limit is set in the child itself, before the server starts: no preexec_fn in a
    # process that runs the fake Ollama's thread.
    limit = f"resource.setrlimit(resource.RLIMIT_NOFILE, ({open_files}, {open_files}))" if open_files else ""
    limit = limit or "pass"
    code = f"import resource, runpy, sys; {limit}; sys.argv = ['mcp-ollama', *sys.argv[1:]]; "
    code += "runpy.run_module('mcp_ollama', run_name='__main__')"
    mine = ("MCP_OLLAMA_", "OLLAMA_", "HOME")
    base = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
    child_env = {**base, "HOME": str(root), "XDG_DATA_HOME": str(root / "data"), **env}
    stderr_path = root / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *argv], env=child_env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_LIMIT
    while True:
        assert process.poll() is None, stderr_path.read_text(errors="replace")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the server did not answer /healthz within {READY_LIMIT:g} s"
        time.sleep(0.05)
    printed = re.search(rb"Authorization: Bearer (\S+)", stderr_path.read_bytes())
    token = printed[1].decode() if printed else "no-token-was-printed"
    return Server(url, port, process, stderr_path, token)


def _stop(server: Server) -> None:
    server.process.terminate()
    server.process.communicate(timeout=30)


@pytest.fixture(scope="module")
def tight(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "MCP_OLLAMA_HTTP_HEADER_TIMEOUT": "1",
        "MCP_OLLAMA_HTTP_BODY_TIMEOUT": "1",
        "MCP_OLLAMA_HTTP_KEEP_ALIVE": "1",
    }
    server = _start(tmp_path_factory.mktemp("tight"), _fake_server.url, env=env, open_files=OPEN_FILES)
    yield server
    _stop(server)


@pytest.fixture(scope="module")
def roomy(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "MCP_OLLAMA_HTTP_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        "MCP_OLLAMA_HTTP_HEADER_TIMEOUT": "600",  # connections held open on purpose stay open
    }
    server = _start(tmp_path_factory.mktemp("roomy"), _fake_server.url, env=env)
    yield server
    _stop(server)


@dataclass
class Team:
    server: Server
    tokens_file: Path
    tokens: dict[str, str]
    dead_port: int
    """Where the server looks for Ollama, and nothing listens."""


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    tokens_file = root / "tokens"
    tokens = {name: add_token(tokens_file, name) for name in ("alice", "bob")}
    dead_port = free_port()
    env = {"MCP_OLLAMA_HTTP_TOKEN": OPERATOR_TOKEN, "MCP_OLLAMA_CONNECT_TIMEOUT": "2"}
    server = _start(root, f"http://127.0.0.1:{dead_port}", env=env, tokens_file=tokens_file)
    yield Team(server, tokens_file, tokens, dead_port)
    _stop(server)


def _connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(CLOSE_LIMIT)
    sock.connect(("127.0.0.1", server.port))
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closing)."""
    received = b""
    with sock:
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            except TimeoutError:
                raise AssertionError(f"the server kept the connection open for {CLOSE_LIMIT:g} s") from None
            if not chunk:
                return received
            received += chunk


def _response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole response (status line and headers, body) read off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert length is not None
    while len(body) < int(length[1]):
        body += sock.recv(65536)
    return head, body


def _one_sentence(text: str) -> None:
    """A short sentence that ends like one, with no second sentence or line after it."""
    assert text and len(text) <= 300 and "\n" not in text, text
    assert text.endswith("."), text
    assert re.search(r"[.!?]\s+[A-Z]", text[:-1]) is None, text


def _error_sentence(path: str, answer: httpx.Response) -> str:
    """The error sentence in each endpoint's shape: JSON-RPC on /mcp, {"error": ...} on /chat."""
    body = answer.json()
    text = body["error"]["message"] if path == "/mcp" else body["error"]
    assert isinstance(text, str)
    return text


# ----------------------------------------------------------------------- slow and idle clients


def test_a_connection_that_sends_part_of_its_headers_and_goes_quiet_is_closed(tight: Server) -> None:
    sock = _connect(tight)
    sock.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica")
    received = _until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received


def test_a_connection_that_never_sends_a_byte_is_closed(tight: Server) -> None:
    assert _until_closed(_connect(tight)) == b""


def test_a_kept_alive_connection_that_starts_a_second_request_and_goes_quiet_is_closed(
    tight: Server,
) -> None:
    sock = _connect(tight)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _ = _response(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the keep-alive timer stops; the headers never end
    received = _until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received


def test_a_body_that_stops_arriving_is_cut_off(tight: Server) -> None:
    sock = _connect(tight)
    head = "POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Authorization: Bearer {tight.token}\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(head.encode() + b'{"message": ')  # 12 of the 100 bytes promised
    _until_closed(sock)


# ----------------------------------------------------------------------- floods and caps


def test_a_flood_of_half_sent_connections_at_the_open_file_limit_is_cleared_quietly(
    tight: Server,
) -> None:
    """1,100 connections that send half a request line, against a server allowed 1,024 open files:
    the server answers the excess 503 and closes the rest after the header deadline, a token holder
    is answered, no accept() fails for want of descriptors, and the log stays small."""
    selector = selectors.DefaultSelector()
    attackers: list[socket.socket] = []
    try:
        for number in range(FLOOD):
            sock = socket.socket()
            sock.bind((f"127.0.0.{2 + number // 50}", 0))  # 50 per address: under the per-address cap
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", tight.port))
            attackers.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
        # Each attacker sends part of a request line as soon as its connection is up.
        pending = len(attackers)
        deadline = time.monotonic() + RECOVERY_LIMIT
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):  # refused with a 503 and closed already
                    sock.send(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                selector.unregister(sock)
                pending -= 1
        assert pending == 0, f"{pending} attackers never got connected"

        answered = None
        while answered is None:
            assert tight.process.poll() is None, "the server died"
            assert len(tight.stderr()) < STDERR_LIMIT, "the flood flooded the log"
            assert time.monotonic() < deadline, "a token holder was not answered while the flood lasted"
            try:
                answer = httpx.post(
                    tight.url + "/chat", json={"message": "still there?"}, headers=tight.auth(), timeout=10
                )
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                answered = answer
            else:
                assert answer.status_code == 503, answer.text
                time.sleep(0.2)
        assert answered.json()["answer"]

        # Every attacker's connection is closed by the server (a 408, a 503, or nothing).
        for sock in attackers:
            sock.setblocking(True)
            sock.settimeout(max(1.0, deadline - time.monotonic()))
        for sock in attackers:
            received = _until_closed(sock)
            assert received == b"" or received.startswith((b"HTTP/1.1 408 ", b"HTTP/1.1 503 ")), received
    finally:
        selector.close()
        for sock in attackers:
            sock.close()
    log = tight.stderr()
    assert len(log) < STDERR_LIMIT
    assert b"Too many open files" not in log
    assert b"Traceback" not in log


def test_connections_beyond_the_per_address_cap_get_503_with_a_sentence_while_others_are_served(
    roomy: Server,
) -> None:
    held = [_connect(roomy, "127.0.0.3") for _ in range(PER_ADDRESS)]
    try:
        extra = _connect(roomy, "127.0.0.3")  # accepted after the 8 above: the kernel queues in order
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        refused = _until_closed(extra)
        head, _, body = refused.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), refused
        _one_sentence(body.decode())
        assert httpx.get(roomy.url + "/healthz").status_code == 200  # another address is served
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + CLOSE_LIMIT
    while True:  # the server notices the closes, and the address is served again
        sock = _connect(roomy, "127.0.0.3")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        if _until_closed(sock).startswith(b"HTTP/1.1 200 "):
            break
        assert time.monotonic() < deadline, "the address stayed refused after its connections closed"
        time.sleep(0.1)


# ----------------------------------------------------------------------- tokens


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_without_a_tokens_file_a_request_without_the_printed_token_gets_401(
    roomy: Server, path: str, token: str | None
) -> None:
    headers = {**MCP_HEADERS, **(roomy.auth(token) if token else {})}
    body = INITIALIZE if path == "/mcp" else {"message": "hi"}
    assert httpx.post(roomy.url + path, json=body, headers=headers, timeout=30).status_code == 401
    allowed = httpx.post(roomy.url + path, json=body, headers={**MCP_HEADERS, **roomy.auth()}, timeout=30)
    assert allowed.status_code == 200, allowed.text


def test_the_generated_token_is_printed_once_at_start_and_never_logged(roomy: Server) -> None:
    assert len(roomy.token) >= 32
    for token in (roomy.token, roomy.token[:-1], "x"):
        httpx.post(roomy.url + "/chat", json={"message": "hi"}, headers=roomy.auth(token), timeout=30)
    log = roomy.stderr().decode()
    assert log.count(roomy.token[:20]) == 1, "printed once, and in no log line"
    [line] = [line for line in log.splitlines() if roomy.token in line]
    assert f"http://127.0.0.1:{roomy.port}/mcp" in line


def test_a_token_revoked_by_an_edit_that_keeps_size_and_mtime_stops_working(team: Team) -> None:
    url, bob = team.server.url, team.tokens["bob"]
    before = team.tokens_file.stat()
    answer = httpx.post(url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **team.server.auth(bob)})
    assert answer.status_code == 200
    text = team.tokens_file.read_text(encoding="utf-8")
    revoked = text.replace(hash_token(bob).hex(), hash_token("someone else entirely").hex())
    assert len(revoked) == len(text) and revoked != text
    team.tokens_file.write_text(revoked, encoding="utf-8")
    os.utime(team.tokens_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = team.tokens_file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    refused = httpx.post(url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **team.server.auth(bob)})
    assert refused.status_code == 401
    alice = httpx.post(
        url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **team.server.auth(team.tokens["alice"])}
    )
    assert alice.status_code == 200


def test_a_remote_principal_never_sees_the_ollama_address_in_post_chat_errors(team: Team) -> None:
    """alice (a name in the tokens file) is told Ollama is unreachable, not where; the operator, both."""
    url, port = team.server.url, str(team.dead_port)
    alice = httpx.post(
        url + "/chat", json={"message": "hi"}, headers=team.server.auth(team.tokens["alice"]), timeout=60
    )
    assert alice.status_code == 503, alice.text
    told = alice.json()["error"]
    assert "Ollama" in told and port not in told and "127.0.0.1" not in told, told
    operator = httpx.post(
        url + "/chat", json={"message": "hi"}, headers=team.server.auth(OPERATOR_TOKEN), timeout=60
    )
    assert operator.status_code == 503, operator.text
    assert port in operator.json()["error"]


# ----------------------------------------------------------------------- Origin and bodies


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:1@evil.example",  # userinfo: the host is evil.example
        "http://127.0.0.1:8765@evil.example",
        "https://[::1]:443@evil.example",
        "http://localhost:8765/page",  # an Origin has no path; a prefix match let it through
        "http://localhost:99999",
    ],
)
def test_an_origin_that_only_starts_like_an_allowed_one_is_refused(
    roomy: Server, path: str, origin: str
) -> None:
    body = INITIALIZE if path == "/mcp" else {"message": "hi"}
    headers = {**MCP_HEADERS, **roomy.auth()}
    refused = httpx.post(roomy.url + path, json=body, headers={**headers, "Origin": origin}, timeout=30)
    assert refused.status_code == 403, refused.text
    _one_sentence(_error_sentence(path, refused))
    allowed = httpx.post(
        roomy.url + path, json=body, headers={**headers, "Origin": "http://localhost:3000"}, timeout=30
    )
    assert allowed.status_code == 200, allowed.text


NESTED = {
    "100k nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "50k nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "nested inside a message": b'{"message": "hi", "session_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize("body", list(NESTED.values()), ids=list(NESTED))
def test_deeply_nested_json_gets_400_with_one_sentence(roomy: Server, path: str, body: bytes) -> None:
    answer = httpx.post(roomy.url + path, content=body, headers={**MCP_HEADERS, **roomy.auth()}, timeout=30)
    assert answer.status_code == 400, answer.text
    sentence = _error_sentence(path, answer)
    _one_sentence(sentence)
    assert "nest" in sentence
    assert b"Traceback" not in roomy.stderr()


MALFORMED = {
    "not JSON": b"{nope",
    "invalid UTF-8": b'{"message": "\xff\xfe"}',
    "empty": b"",
    "truncated": b'{"message": "hi"',
    "an array": b"[]",
    "a number": b"42",
    "a lone surrogate": b'{"message": "\\ud800"}',
    "JSON-RPC 1.0": b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    "params not an object": b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": []}',
    "result not an object": b'{"jsonrpc": "2.0", "id": 1, "result": 5}',
    "neither method nor result": b'{"jsonrpc": "2.0", "id": 1}',
    "error without a code": b'{"jsonrpc": "2.0", "id": 1, "error": {"message": "x"}}',
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_every_malformed_body_to_mcp_gets_400_with_one_sentence(roomy: Server, body: bytes) -> None:
    answer = httpx.post(roomy.url + "/mcp", content=body, headers={**MCP_HEADERS, **roomy.auth()}, timeout=30)
    assert answer.status_code == 400, answer.text
    _one_sentence(_error_sentence("/mcp", answer))


def test_an_oversized_body_to_mcp_gets_413_with_one_sentence(roomy: Server) -> None:
    body = json.dumps({"message": "x" * (5 * 1024 * 1024)}).encode()
    answer = httpx.post(roomy.url + "/mcp", content=body, headers={**MCP_HEADERS, **roomy.auth()}, timeout=60)
    assert answer.status_code == 413, answer.text
    _one_sentence(_error_sentence("/mcp", answer))


def test_post_chat_still_answers_every_malformed_or_oversized_body_with_one_sentence(roomy: Server) -> None:
    """A guard against regressions, not a new behaviour: /chat did this before the body check in
    front of it, which now answers most of these itself, in /chat's shape."""
    oversized = json.dumps({"message": "x" * (5 * 1024 * 1024)}).encode()
    for body, status in [*((body, 400) for body in MALFORMED.values()), (oversized, 413)]:
        answer = httpx.post(
            roomy.url + "/chat", content=body, headers={**MCP_HEADERS, **roomy.auth()}, timeout=60
        )
        assert answer.status_code == status, (body[:40], answer.text)
        _one_sentence(_error_sentence("/chat", answer))


# ----------------------------------------------------------------------- the log


def test_a_repeated_error_is_logged_once_per_interval_with_a_count() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval=60.0, clock=lambda: now[0])
    shown: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    handler = Keep()
    handler.addFilter(repeat)
    log = logging.getLogger("test_http_limits.flood")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False

    def accept_failed(number: int) -> None:  # one place in the code, as asyncio's accept loop is
        log.error("socket.accept() out of system resource (attempt %d)", number)

    try:
        for number in range(10_000):
            accept_failed(number)
        log.error("another place in the code")
        log.info("below WARNING, never held back")
        log.info("below WARNING, never held back")
        now[0] = 61.0
        accept_failed(10_000)
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
        log.propagate = True
    assert shown[0] == "socket.accept() out of system resource (attempt 0)"
    assert shown[1:4] == ["another place in the code", *["below WARNING, never held back"] * 2]
    assert shown[4].startswith("socket.accept() out of system resource (attempt 10000) [and 9999 more")
    assert len(shown) == 5
