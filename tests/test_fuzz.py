"""Property-based fuzzing of the stdio server: thousands of malformed and random lines, one process.

Every hypothesis example is a batch of lines (bad JSON, wrong types, huge strings, unknown
methods, ids of every type, invalid and valid params for every method the server offers,
notifications), written to ONE server process that lives for the whole module. The oracle
below says what each line deserves under JSON-RPC 2.0; after each batch the test checks that

- every request with a usable id (string or integer) got exactly one response with that id,
  shaped ``result`` xor ``error{code:int, message:str}``;
- every unparseable line got a -32700 error with id null, and nothing else got an answer it
  should not have (notifications get none);
- every stdout line is a JSON-RPC 2.0 message;
- the process is still running and answers a ping, and its stderr gained no traceback.

If the process dies anyway, the example fails with its stderr, and the next example gets a
fresh process (without shrinking, which would respawn it hundreds of times).
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .fake_ollama import FakeOllama
from .rawstdio import RawServer

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
BATCH_TIMEOUT = 10.0
"""Seconds one batch may take to be answered in full."""

# ---------------------------------------------------------------------------- the server under test


def spawn(env: dict[str, str]) -> tuple[RawServer, list[threading.Thread]]:
    """A server and the threads pumping its stdout and stderr (joined, they have every byte)."""
    before = set(threading.enumerate())
    server = RawServer(env)
    pumps = [t for t in set(threading.enumerate()) - before if t.name.endswith("(_pump)")]
    return server, pumps


def stderr_when_exited(server: RawServer, pumps: list[threading.Thread], timeout: float = 5.0) -> str:
    """All the process wrote to stderr, once it has exited and its pipes are drained."""
    server.proc.wait(timeout)
    for pump in pumps:
        pump.join(timeout)
    return b"".join(server.stderr_raw).decode("utf-8", "replace")


@dataclass
class FuzzTarget:
    """One long-lived server process, respawned only if an example killed it."""

    env: dict[str, str]
    server: RawServer | None = None
    pumps: list[threading.Thread] = field(default_factory=list)
    spawned: int = 0
    stderr_seen: int = 0
    sentinels: Iterator[int] = field(default_factory=itertools.count)

    def ensure_alive(self) -> RawServer:
        if self.server is None or self.server.proc.poll() is not None:
            if self.server is not None:
                self.server.stop()
            self.server, self.pumps = spawn(self.env)
            self.server.initialize()
            self.spawned += 1
            self.stderr_seen = 0
        return self.server

    def new_stderr(self) -> str:
        assert self.server is not None
        chunks = self.server.stderr_raw
        text = b"".join(chunks[self.stderr_seen :]).decode("utf-8", "replace")
        self.stderr_seen = len(chunks)
        return text

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="module")
def target(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    _fake_server.reset()
    fuzz = FuzzTarget(
        {
            "OLLAMA_HOST": _fake_server.url,
            "MCP_OLLAMA_DB": str(home / "sessions.sqlite3"),
            "MCP_OLLAMA_LOG_LEVEL": "WARNING",
            "MCP_OLLAMA_PRELOAD": "off",
            "HOME": str(home),
        }
    )
    try:
        yield fuzz
    finally:
        fuzz.close()
        _fake_server.reset()


# ---------------------------------------------------------------------------- strategies

SURROGATES = ["\ud800", "a\udfffb", "\udc00\ud800"]
"""Lone surrogates: legal as JSON escapes (``"\\ud800"``), not encodable as UTF-8."""
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
SESSION_IDS = ["fz-a", "fz-b", "fz_C-9", "z" * 64]
VERSIONS = ["2025-11-25", "2025-06-18", "2024-11-05", "2026-07-28", "1999-01-01", ""]
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


@st.composite
def texts(draw: st.DrawFn, max_size: int = 30) -> str:
    """Mostly short text of any kind; now and then a lone surrogate or a huge (~1 MB as JSON) string."""
    kind = draw(st.sampled_from(["text"] * 100 + ["ascii"] * 10 + ["surrogate"] * 8 + ["huge"]))
    if kind == "surrogate":
        return draw(st.sampled_from(SURROGATES))
    if kind == "huge":
        # About 1 MB on the wire whatever the character: json.dumps escapes é and U+2028 as \uXXXX.
        char, size = draw(
            st.sampled_from([("x", 1_000_000), ("é", 170_000), ("\u2028", 170_000), ('"', 500_000)])
        )
        return char * size
    if kind == "ascii":
        return draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=max_size))
    return draw(st.text(st.characters(exclude_categories=()), max_size=max_size))


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | texts()
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts(8), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts(10), json_values, max_size=5)


def either(*strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The given (mostly well-shaped) strategies, or any JSON value at all."""
    return st.one_of(*strategies, json_values)


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(required, optional=optional or {})


session_ids = st.sampled_from(SESSION_IDS) | texts(70)
uris = st.sampled_from([f"chat://sessions/{s}" for s in SESSION_IDS]) | st.builds(
    lambda s: f"chat://sessions/{s}", texts(80)
)
cursors = either(obj({}), obj({"cursor": either(texts(40))}))
options = obj(
    {},
    {
        "temperature": st.floats(),
        "top_k": st.integers(),
        "num_ctx": st.integers(min_value=-5, max_value=2_000_000),
        "num_predict": st.integers(min_value=-3, max_value=40),
        "seed": st.integers(min_value=-(2**70), max_value=2**70),
        "stop": st.lists(texts(5), max_size=20),
        "bogus": json_values,
    },
)
chat_arguments = obj(
    {"message": texts(60)},
    {
        "session_id": session_ids,
        "model": st.sampled_from(["llama3:8b", "llama3", "missing:1b", "", " "]) | texts(250),
        "options": either(options),
    },
)
tool_arguments = either(
    chat_arguments,
    obj({"message": st.sampled_from(["hello", "tell me more"]), "session_id": st.sampled_from(SESSION_IDS)}),
    obj({"session_id": session_ids}),
    obj({}),
)
PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "ping": either(obj({})),
    "initialize": either(
        obj(
            {
                "protocolVersion": st.sampled_from(VERSIONS) | texts(12),
                "capabilities": either(obj({})),
                "clientInfo": either(obj({"name": texts(10), "version": texts(5)})),
            }
        )
    ),
    "tools/list": cursors,
    "tools/call": either(
        obj(
            {
                "name": st.sampled_from(["chat", "list_models", "delete_session", "clear_session"])
                | texts(20),
                "arguments": tool_arguments,
            }
        )
    ),
    "resources/list": cursors,
    "resources/templates/list": cursors,
    "resources/read": either(obj({"uri": uris})),
    "resources/subscribe": either(obj({"uri": uris})),
    "resources/unsubscribe": either(obj({"uri": uris})),
    "prompts/list": cursors,
    "prompts/get": either(
        obj(
            {"name": st.sampled_from(["system_prompt", "continue_session"]) | texts(20)},
            {
                "arguments": either(
                    obj({"session_id": session_ids}),
                    obj({}, {"language": texts(20), "style": st.sampled_from(["concise", "nope"]) | texts()}),
                    st.dictionaries(texts(10), texts(20), max_size=3),
                )
            },
        )
    ),
    "completion/complete": either(
        obj(
            {
                "ref": either(
                    obj({"type": st.just("ref/prompt"), "name": texts(20)}),
                    obj({"type": st.just("ref/resource"), "uri": st.just("chat://sessions/{session_id}")}),
                ),
                "argument": either(
                    obj(
                        {
                            "name": st.sampled_from(["session_id", "model", "style", "language"]) | texts(),
                            "value": texts(20),
                        }
                    )
                ),
            },
            {"context": either(obj({"arguments": st.dictionaries(texts(10), texts(10), max_size=3)}))},
        )
    ),
    "logging/setLevel": either(obj({"level": st.sampled_from(LEVELS) | texts(10)})),
    "server/discover": either(obj({})),
    "subscriptions/listen": either(obj({})),
}
NOTIFICATIONS: dict[str, st.SearchStrategy[Any]] = {
    "notifications/initialized": either(obj({})),
    # Cancel ids from a namespace no request of ours uses: a cancelled request gets no answer.
    "notifications/cancelled": either(
        obj(
            {"requestId": st.integers(max_value=-(10**12)) | st.builds(lambda s: f"never-{s}", texts(10))},
            {"reason": texts(20)},
        )
    ),
    "notifications/progress": either(obj({"progressToken": json_values, "progress": json_values})),
    "notifications/roots/list_changed": either(obj({})),
}
methods = st.sampled_from([*PARAMS, *NOTIFICATIONS]) | texts(30)

ID_KINDS = ["int", "negint", "hugeint", "str", "float", "bool", "null", "object", "array", "missing"]


@dataclass(frozen=True)
class Request:
    """A request or notification, its id still to be made unique (see ``materialise``)."""

    method: str
    id_kind: str
    id_text: str
    params: Any
    has_params: bool
    jsonrpc: Any
    meta: Any


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    table = PARAMS if method in PARAMS else NOTIFICATIONS
    params = draw(table.get(method, either(json_objects)))
    meta = draw(
        st.sampled_from([None] * 6 + ["progress", "modern", "junk"]).flatmap(
            lambda kind: {
                None: st.none(),
                "progress": obj({"progressToken": st.integers() | texts(10) | json_values}),
                "modern": st.just(MODERN_META),
                "junk": json_values,
            }[kind]
        )
    )
    return Request(
        method=method,
        id_kind=draw(st.sampled_from(ID_KINDS)),
        id_text=draw(texts(12)),
        params=params,
        has_params=draw(st.sampled_from([True] * 5 + [False])),
        jsonrpc=draw(st.sampled_from(["2.0"] * 12 + ["1.0", 2.0, None, "missing"])),
        meta=meta,
    )


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "deep", "scalar", "object", "response", "truncated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(texts(200)).encode("utf-8", "surrogatepass")
    if kind == "deep":
        # Nested arrays in a ping's params: fine at depth 50; at 3,000 and more Python's json
        # gives up (RecursionError), which the transport answers as a parse error.
        depth = draw(st.sampled_from([50, 3_000, 100_000]))
        closed = draw(st.booleans())
        nested = b"[" * depth + (b"]" * depth if closed else b"")
        return b'{"jsonrpc":"2.0","id":@ID@,"method":"ping","params":{"x":' + nested + b"}}"
    if kind == "scalar":
        scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts()
        value = draw(scalars | st.lists(json_values))
        return json.dumps(value).encode()
    if kind == "object":
        return json.dumps(draw(json_objects)).encode()
    if kind == "response":
        reply = draw(
            either(
                obj({"jsonrpc": st.just("2.0"), "id": json_values, "result": json_values}),
                obj(
                    {
                        "jsonrpc": st.just("2.0"),
                        "id": json_values,
                        "error": obj({"code": json_values, "message": json_values}),
                    }
                ),
            )
        )
        return json.dumps(reply).encode()
    whole = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "ping", "params": draw(json_objects)}).encode()
    return whole[: draw(st.integers(min_value=0, max_value=max(len(whole) - 1, 0)))]


class Batch:
    """The lines of one example; its repr (shown for a failing example) abbreviates huge values."""

    def __init__(self, items: list[Request | bytes]) -> None:
        self.items = items

    def __repr__(self) -> str:
        shown = []
        for item in self.items:
            text = repr(item)
            shown.append(text if len(text) <= 300 else f"{text[:240]}... <{len(text):,} chars>")
        return "Batch([\n    " + ",\n    ".join(shown) + ",\n])"


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    return Batch(draw(st.lists(st.one_of(requests(), garbage()), min_size=5, max_size=25)))


# ---------------------------------------------------------------------------- the oracle


def usable_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@dataclass
class Expected:
    """What one batch deserves."""

    ids: Counter[Any] = field(default_factory=Counter)
    """Usable ids that must each get exactly one response (keys are JSON-encoded ids)."""
    parse_errors: int = 0
    invalid: int = 0
    maybe_invalid: int = 0
    """Objects without a method (stray responses): dropped, or one -32600 with id null."""


def expect(line: bytes, expected: Expected) -> None:
    if not line.strip():
        return
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        expected.parse_errors += 1
        return
    if not isinstance(data, dict):
        expected.invalid += 1
    elif "method" not in data:
        expected.maybe_invalid += 1
    elif "id" not in data:
        return  # a notification, well-formed or not: never answered
    elif usable_id(data["id"]):
        expected.ids[json.dumps(data["id"])] += 1
    else:
        expected.invalid += 1


def materialise(item: Request | bytes, counter: Iterator[int]) -> bytes:
    """One line of bytes; ids that must be answered are unique across the whole run."""
    n = next(counter)
    if isinstance(item, bytes):
        return item.replace(b"\n", b" ").replace(b"@ID@", str(10**9 + n).encode())
    message: dict[str, Any] = {}
    if item.jsonrpc != "missing":
        message["jsonrpc"] = item.jsonrpc
    ids: dict[str, Any] = {
        "int": 10**9 + n,
        "negint": -(10**9) - n,
        "hugeint": 2**80 + n,
        "str": f"fuzz-{n}-{item.id_text}",
        "float": n + 0.5,
        "bool": n % 2 == 0,
        "null": None,
        "object": {"n": n},
        "array": [n],
    }
    if item.id_kind != "missing":
        message["id"] = ids[item.id_kind]
    message["method"] = item.method
    if item.has_params:
        params = item.params
        if item.meta is not None and isinstance(params, dict):
            params = {**params, "_meta": item.meta}
        message["params"] = params
    return json.dumps(message).encode()


# ---------------------------------------------------------------------------- checking answers


def check_shape(message: Any) -> None:
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    if "method" in message:  # a notification from the server (progress, log, list_changed)
        assert isinstance(message["method"], str) and "id" not in message, message
        return
    assert "id" in message and (message["id"] is None or usable_id(message["id"])), message
    assert ("result" in message) != ("error" in message), message
    if "error" in message:
        error = message["error"]
        assert isinstance(error, dict), message
        assert isinstance(error.get("code"), int) and not isinstance(error["code"], bool), message
        assert isinstance(error.get("message"), str), message
    else:
        assert isinstance(message["result"], dict), message


def run_batch(fuzz: FuzzTarget, payload: list[bytes], expected: Expected) -> None:
    server = fuzz.ensure_alive()
    sentinel = f"sentinel-{next(fuzz.sentinels)}"
    try:
        server.send_raw(b"".join(line + b"\n" for line in payload))
        server.send({"jsonrpc": "2.0", "id": sentinel, "method": "ping"})
    except OSError:
        pass  # the process died mid-write: reported below
    answered: Counter[Any] = Counter()
    null_errors: Counter[int] = Counter()
    pong = False
    deadline = time.monotonic() + BATCH_TIMEOUT
    while not (pong and answered == expected.ids):
        if server.proc.poll() is not None and server.lines.empty():
            stderr_when_exited(server, fuzz.pumps)  # the pump threads have the last words
            raise AssertionError(
                f"the server exited with {server.proc.returncode} on this batch:\n"
                + "\n".join(repr(line[:300]) for line in payload)
                + "\n--- stderr ---\n"
                + fuzz.new_stderr()[-4000:]
            )
        if time.monotonic() > deadline:
            stderr = fuzz.new_stderr()
            server.stop()  # deaf or stuck: the next example gets a fresh process
            raise AssertionError(
                f"unanswered after {BATCH_TIMEOUT} s: {expected.ids - answered}, ping answered: {pong}, "
                f"server still running: {server.proc.returncode is None}\n--- stderr ---\n{stderr[-4000:]}"
            )
        try:
            line = server.lines.get(timeout=0.05)
        except queue.Empty:
            continue
        message = json.loads(line)
        check_shape(message)
        if "method" in message:
            continue
        if message["id"] == sentinel:
            assert message.get("result") == {}, message
            pong = True
            continue
        if message["id"] is None:
            null_errors[message["error"]["code"]] += 1
            continue
        key = json.dumps(message["id"])
        assert key in expected.ids, f"a response nobody asked for: {message}"
        answered[key] += 1
        assert answered[key] <= expected.ids[key], f"answered twice: {message}"
    # Bad lines are answered by the reader thread before it reads the next line, so by now
    # (the sentinel ping came after them) every one of their errors has been written.
    assert null_errors[PARSE_ERROR] == expected.parse_errors, null_errors
    assert expected.invalid <= null_errors[INVALID_REQUEST] <= expected.invalid + expected.maybe_invalid
    assert set(null_errors) <= {PARSE_ERROR, INVALID_REQUEST}, null_errors
    assert server.proc.poll() is None
    stderr = fuzz.new_stderr()
    assert "Traceback" not in stderr, stderr[-4000:]


# ---------------------------------------------------------------------------- the tests

_counter = itertools.count()


@pytest.mark.slow  # ~3,000 lines through one process: ~8 s; CI runs it with -m slow
def test_random_and_malformed_lines_get_exactly_the_answers_json_rpc_requires(target: FuzzTarget) -> None:
    """Every example, then what must hold once all have run: one process served them all, and
    nothing is left over. (The after-checks are part of this test, not a test of their own whose
    verdict would depend on running after it.)"""

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=batches())
    def example(batch: Batch) -> None:
        payload = [materialise(item, _counter) for item in batch.items]
        expected = Expected()
        for line in payload:
            expect(line, expected)
        run_batch(target, payload, expected)

    example()

    server = target.ensure_alive()
    assert target.spawned == 1, f"the server had to be restarted {target.spawned - 1} times"
    # A ping as a barrier: anything late (an answer to a notification, a duplicate) written before
    # its answer is in the queue ahead of it.
    request_id = server.next_id()
    server.send({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
    first = server.read(timeout=10)
    assert first == {"jsonrpc": "2.0", "id": request_id, "result": {}}, "no late answers or duplicates"
    assert server.stdout_is_pure_jsonrpc()


# ---------------------------------------------------------------------------- what the fuzzing found


def _raw_env(fake: FakeOllama, tmp_path: Path) -> dict[str, str]:
    return {
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_LOG_LEVEL": "WARNING",
        "MCP_OLLAMA_PRELOAD": "off",
        "HOME": str(tmp_path),
    }


def response_unless_dead(server: RawServer, request_id: Any, timeout: float = 10.0) -> dict[str, Any] | None:
    """The response to ``request_id``; None as soon as the process has died without sending it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = json.loads(server.lines.get(timeout=0.05))
        except queue.Empty:
            if server.proc.poll() is not None:
                return None
            continue
        if message.get("id") == request_id and "method" not in message:
            assert isinstance(message, dict)
            return message
    return None


ECHOED_SURROGATES = {
    "string-id": b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}',
    "invalid-request-string-id": b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping","params":[1]}',
    "unknown-method": b'{"jsonrpc":"2.0","id":41,"method":"no/such\\ud800method"}',
    "unknown-tool": b'{"jsonrpc":"2.0","id":42,"method":"tools/call",'
    b'"params":{"name":"\\udfff","arguments":{}}}',
    "resource-uri": b'{"jsonrpc":"2.0","id":43,"method":"resources/read",'
    b'"params":{"uri":"chat://sessions/\\ud800"}}',
}


def test_a_lone_surrogate_echoed_back_does_not_kill_or_deafen_the_server(
    fake: FakeOllama, tmp_path: Path
) -> None:
    """``"\\ud800"`` is a legal JSON escape; the server echoes it (id, method, tool name, uri).
    One server meets every such line in turn and answers each, then a ping, then shuts down on EOF."""
    with RawServer(_raw_env(fake, tmp_path)) as server:
        server.initialize()
        for case, line in ECHOED_SURROGATES.items():
            server.send_raw(line + b"\n")
            answer = response_unless_dead(server, json.loads(line)["id"], timeout=5)
            alive = server.proc.poll() is None
            stderr = b"".join(server.stderr_raw).decode("utf-8", "replace")
            assert alive, f"{case}: the server died (exit {server.proc.returncode}):\n{stderr[-2000:]}"
            assert answer is not None, f"{case}: no response, and the server still runs"
            assert ("error" in answer) != ("result" in answer), case
            assert server.request("ping", timeout=3)["result"] == {}, f"{case}: the server still reads stdin"
        server.close_stdin()
        assert server.wait(5) == 0, "and still shuts down on EOF"


SURROGATE_ARGUMENTS = {
    "message": b'{"message":"hi \\udc00 there"}',
    "model": b'{"message":"hi","model":"llama3\\ud800"}',
    "options-stop": b'{"message":"hi","options":{"stop":["\\ud800"]}}',
}


def test_a_lone_surrogate_in_chat_arguments_is_a_clear_error_not_an_unexpected_exception(
    fake: FakeOllama, tmp_path: Path
) -> None:
    """Such text cannot be encoded for Ollama or SQLite; it once escaped as an unexpected exception."""
    server, pumps = spawn(_raw_env(fake, tmp_path))
    answers: dict[str, dict[str, Any]] = {}
    with server:
        server.initialize()
        for request_id, (case, arguments) in enumerate(SURROGATE_ARGUMENTS.items(), start=7):
            server.send_raw(
                b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"chat","arguments":'
                % request_id
                + arguments
                + b"}}\n"
            )
            answer = response_unless_dead(server, request_id)
            assert answer is not None, f"{case}: the server died"
            answers[case] = answer
            assert server.request("ping", timeout=5)["result"] == {}, case
        server.close_stdin()
        stderr = stderr_when_exited(server, pumps)  # every byte, not what arrived within a sleep
    for case, answer in answers.items():
        result = answer["result"]
        text = result["content"][0]["text"]
        if result["isError"]:
            # What happened and what to do, like every other chat error; not the SDK's catch-all.
            assert text != "Error executing tool chat", (case, text)
    assert "Traceback" not in stderr, stderr[-3000:]


def test_an_invalid_cursor_is_invalid_params_on_every_list_method(fake: FakeOllama, tmp_path: Path) -> None:
    """Spec (pagination): "Invalid cursors SHOULD result in an error with code -32602".

    ``resources/list`` does so; the other lists are never paginated, so any cursor is one the
    server never issued, yet they answer the first page again.
    """
    with RawServer(_raw_env(fake, tmp_path)) as server:
        server.initialize()
        answers = {
            method: server.request(method, {"cursor": "not-a-cursor-we-issued"})
            for method in ("resources/list", "tools/list", "prompts/list", "resources/templates/list")
        }
    codes = {method: answer.get("error", {}).get("code") for method, answer in answers.items()}
    assert codes == dict.fromkeys(answers, -32602)
