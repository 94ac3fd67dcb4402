"""The fake Ollama's model loading and long streams, over real HTTP with httpx.

No test here measures time: a load is made to wait with a huge ``load_delay`` (and released by
setting it to 0), and waiting is proven by events (an active request, no headers, no load
recorded), never by elapsed seconds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .fake_ollama import Behavior, FakeModel, FakeOllama, keep_alive_seconds, parse_go_duration

MODEL = "llama3:8b"
FOREVER = 3600.0
"""A load_delay no test waits out: each one releases the load by setting load_delay to 0."""
UNLOADS = ["0", 0, "0s", "0m"]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[FakeModel(), FakeModel(name="mistral:7b", family="mistral")]) as server:
        yield server


@pytest.fixture
def http(fake: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=30.0) as client:
        yield client


def chat_body(*, messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if messages is not None:
        body["messages"] = messages
    body.update(extra)
    return body


def stream_chat(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    with http.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line]


def running(http: httpx.Client) -> list[dict[str, Any]]:
    response = http.get("/api/ps")
    assert response.status_code == 200
    models: list[dict[str, Any]] = response.json()["models"]
    return models


class Background:
    """One chat request in a thread: ``headers`` is set when the response headers arrive."""

    def __init__(self, fake: FakeOllama, body: dict[str, Any]) -> None:
        self.headers = threading.Event()
        self.lines: list[dict[str, Any]] = []
        self.content_type = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fake.url, body), daemon=True)
        self._thread.start()

    def _run(self, url: str, body: dict[str, Any]) -> None:
        try:
            with (
                httpx.Client(base_url=url, timeout=60.0) as client,
                client.stream("POST", "/api/chat", json=body) as response,
            ):
                self.content_type = response.headers["content-type"]
                self.headers.set()
                self.lines = [json.loads(line) for line in response.iter_lines() if line]
        except BaseException as exc:
            self.error = exc

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(60)
        assert not self._thread.is_alive(), "the request never finished"
        assert self.error is None, self.error
        return self.lines


def raw_chat(fake: FakeOllama, body: dict[str, Any]) -> socket.socket:
    """A chat request on a plain socket, so that the test can hang up whenever it likes."""
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=30)
    data = json.dumps(body).encode()
    sock.sendall(
        b"POST /api/chat HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --- loading -------------------------------------------------------------------------------------


def test_a_chat_for_a_model_not_loaded_waits_for_the_load_before_any_header(
    fake: FakeOllama, http: httpx.Client
) -> None:
    fake.load_delay = FOREVER
    request = Background(fake, chat_body())

    assert fake.wait_for_active(1)
    assert not request.headers.wait(0.2), "headers left before the model was loaded"
    assert fake.loads == []
    assert running(http) == [], "a model being loaded is not listed yet"

    fake.load_delay = 0.0  # the load in progress ends now
    assert fake.wait_for_loads(1)
    lines = request.join()
    assert "".join(line["message"]["content"] for line in lines) == (
        "You said: hi. I have seen 0 earlier messages."
    )
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["load_duration"] > 0
    assert lines[-1]["total_duration"] > lines[-1]["load_duration"]
    assert fake.loads == [MODEL]
    assert [m["name"] for m in running(http)] == [MODEL]
    assert fake.loaded_models == [MODEL]


def test_a_chat_for_a_loaded_model_does_not_wait(fake: FakeOllama, http: httpx.Client) -> None:
    stream_chat(http, chat_body())
    assert fake.loads == [MODEL]

    fake.load_delay = FOREVER  # a second load would never end
    lines = stream_chat(http, chat_body(stream=True))
    whole = http.post("/api/chat", json=chat_body(stream=False)).json()

    assert lines[-1]["done_reason"] == "stop"
    assert whole["done_reason"] == "stop"
    assert fake.loads == [MODEL], "no second load"


def test_each_model_loads_once_and_ps_lists_every_loaded_model(fake: FakeOllama, http: httpx.Client) -> None:
    stream_chat(http, chat_body())
    stream_chat(http, chat_body(model="mistral:7b"))
    stream_chat(http, chat_body())

    assert fake.loads == [MODEL, "mistral:7b"]
    ps = running(http)
    assert [m["name"] for m in ps] == [MODEL, "mistral:7b"]
    assert all(m["context_length"] == 4096 and m["size_vram"] == m["size"] for m in ps)


def test_concurrent_chats_for_a_model_not_loaded_share_one_load(fake: FakeOllama) -> None:
    fake.load_delay = FOREVER
    requests = [
        Background(fake, chat_body(messages=[{"role": "user", "content": f"q{i}"}])) for i in range(3)
    ]
    assert fake.wait_for_active(3)
    assert not any(r.headers.wait(0.1) for r in requests)

    fake.load_delay = 0.0
    for i, request in enumerate(requests):
        assert request.join()[0]["message"]["content"] == "You "
        assert request.lines[-2]["message"]["content"] == "messages."
        assert f"q{i}" in "".join(line["message"]["content"] for line in request.lines)
    assert fake.loads == [MODEL]


def test_a_different_num_ctx_reloads_the_model(fake: FakeOllama, http: httpx.Client) -> None:
    stream_chat(http, chat_body(options={"num_ctx": 8192}))
    assert running(http)[0]["context_length"] == 8192
    stream_chat(http, chat_body(options={"num_ctx": 8192, "temperature": 0}))
    assert fake.loads == [MODEL]

    stream_chat(http, chat_body())  # no num_ctx: Ollama's default, so a reload

    assert fake.loads == [MODEL, MODEL]
    assert running(http)[0]["context_length"] == 4096


def test_first_token_delay_comes_after_the_load(fake: FakeOllama) -> None:
    fake.load_delay = FOREVER
    fake.enqueue(Behavior(first_token_delay=FOREVER))
    sock = raw_chat(fake, chat_body())
    try:
        assert fake.wait_for_active(1)
        assert fake.loads == []
        fake.load_delay = 0.0
        assert fake.wait_for_loads(1), "the load ends before the first token's delay begins"
    finally:
        sock.close()
    assert fake.wait_for_hangup()


def test_hanging_up_during_a_load_is_a_hangup_and_aborts_the_load(
    fake: FakeOllama, http: httpx.Client
) -> None:
    fake.load_delay = FOREVER
    sock = raw_chat(fake, chat_body())
    assert fake.wait_for_active(1)

    sock.close()

    assert fake.wait_for_hangup()
    assert fake.wait_for_idle()
    assert fake.loads == []
    assert running(http) == []
    # The next request loads the model afresh.
    fake.load_delay = 0.0
    stream_chat(http, chat_body())
    assert fake.loads == [MODEL]


def test_hanging_up_while_queued_behind_a_load_is_a_hangup(fake: FakeOllama) -> None:
    fake.load_delay = FOREVER
    first = Background(fake, chat_body())
    assert fake.wait_for_active(1)
    queued = raw_chat(fake, chat_body())
    assert fake.wait_for_active(2)

    queued.close()
    assert fake.wait_for_hangup()

    fake.load_delay = 0.0
    assert first.join()[-1]["done_reason"] == "stop"
    assert fake.loads == [MODEL]
    assert fake.hangups == 1


def test_reset_unloads_every_model_and_restores_the_load_delay(fake: FakeOllama, http: httpx.Client) -> None:
    fake.load_delay = 0.5
    fake.load_delay = 0.0
    stream_chat(http, chat_body())
    fake.load_delay = 12.0

    fake.reset()

    assert fake.load_delay == 0.0
    assert fake.loads == []
    assert running(http) == []
    stream_chat(http, chat_body())
    assert fake.loads == [MODEL], "loaded afresh after the reset"


# --- chat without messages: load and unload ----------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": None}], ids=["absent", "empty", "null"])
@pytest.mark.parametrize("stream", [None, True, False])
def test_a_chat_without_messages_only_loads_the_model_and_answers_one_json_object(
    fake: FakeOllama, http: httpx.Client, body: dict[str, Any], stream: bool | None
) -> None:
    request: dict[str, Any] = {"model": MODEL, **body}
    if stream is not None:
        request["stream"] = stream
    fake.enqueue(Behavior(reply="scripted for the real chat"))

    response = http.post("/api/chat", json=request)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert set(answer) == {"model", "created_at", "message", "done_reason", "done"}
    assert answer["model"] == MODEL
    assert answer["message"] == {"role": "assistant", "content": ""}
    assert answer["done_reason"] == "load" and answer["done"] is True
    assert fake.loads == [MODEL]
    assert [m["name"] for m in running(http)] == [MODEL]
    assert fake.chat_requests == [request]
    assert [r for r in fake.chat_requests if r.get("messages")] == []
    # A preload takes no scripted behaviour: the next real chat gets it.
    lines = stream_chat(http, chat_body())
    assert "".join(line["message"]["content"] for line in lines) == "scripted for the real chat"
    assert fake.loads == [MODEL], "the preload loaded it"


def test_a_preload_waits_for_the_load_too(fake: FakeOllama) -> None:
    fake.load_delay = FOREVER
    request = Background(fake, {"model": MODEL, "messages": []})
    assert fake.wait_for_active(1)
    assert not request.headers.wait(0.2)

    fake.load_delay = 0.0

    assert request.join() == [
        {
            "model": MODEL,
            "created_at": request.lines[0]["created_at"],
            "message": {"role": "assistant", "content": ""},
            "done_reason": "load",
            "done": True,
        }
    ]
    assert request.content_type == "application/json; charset=utf-8"
    assert fake.loads == [MODEL]


@pytest.mark.parametrize("keep_alive", UNLOADS, ids=repr)
def test_keep_alive_zero_without_messages_unloads(
    fake: FakeOllama, http: httpx.Client, keep_alive: Any
) -> None:
    http.post("/api/chat", json={"model": MODEL, "messages": []})
    assert [m["name"] for m in running(http)] == [MODEL]
    fake.load_delay = FOREVER  # unloading never loads

    response = http.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": keep_alive})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert answer["done_reason"] == "unload" and answer["done"] is True
    assert answer["message"] == {"role": "assistant", "content": ""}
    assert running(http) == []
    assert fake.loaded_models == []
    assert fake.loads == [MODEL]


def test_unloading_a_model_not_loaded_still_answers_unload(fake: FakeOllama, http: httpx.Client) -> None:
    answer = http.post("/api/chat", json={"model": MODEL, "keep_alive": 0}).json()
    assert answer["done_reason"] == "unload"
    assert fake.loads == []


def test_a_preload_of_a_missing_model_is_404(fake: FakeOllama, http: httpx.Client) -> None:
    response = http.post("/api/chat", json={"model": "nope:1b", "messages": []})
    assert response.status_code == 404
    assert fake.loads == []


@pytest.mark.parametrize("keep_alive", UNLOADS, ids=repr)
def test_keep_alive_zero_with_messages_answers_then_unloads(
    fake: FakeOllama, http: httpx.Client, keep_alive: Any
) -> None:
    lines = stream_chat(http, chat_body(keep_alive=keep_alive))
    assert lines[-1]["done_reason"] == "stop"
    assert running(http) == []

    stream_chat(http, chat_body())
    assert fake.loads == [MODEL, MODEL], "unloaded after the first answer, so loaded again"


# --- keep_alive ----------------------------------------------------------------------------------


def expires_in(http: httpx.Client) -> timedelta:
    (model,) = running(http)
    expires = datetime.strptime(model["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return expires - datetime.now(UTC)


@pytest.mark.parametrize(
    ("keep_alive", "about"),
    [
        (None, timedelta(minutes=5)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        (600, timedelta(minutes=10)),
        (90.5, timedelta(seconds=90.5)),
    ],
)
def test_keep_alive_sets_when_the_model_unloads(
    fake: FakeOllama, http: httpx.Client, keep_alive: Any, about: timedelta
) -> None:
    body = chat_body() if keep_alive is None else chat_body(keep_alive=keep_alive)
    stream_chat(http, body)
    # Generous bounds: the expiry is wall-clock, these only tell 5 minutes from an hour.
    assert about - timedelta(seconds=30) < expires_in(http) <= about + timedelta(seconds=1)


@pytest.mark.parametrize("keep_alive", [-1, "-1h", "-5m", -0.5], ids=repr)
def test_a_negative_keep_alive_keeps_the_model_loaded_for_good(
    fake: FakeOllama, http: httpx.Client, keep_alive: Any
) -> None:
    stream_chat(http, chat_body(keep_alive=keep_alive))
    assert expires_in(http) > timedelta(days=365 * 200)


def test_a_later_request_resets_the_keep_alive(fake: FakeOllama, http: httpx.Client) -> None:
    stream_chat(http, chat_body(keep_alive="1h"))
    stream_chat(http, chat_body(keep_alive="2m"))
    assert expires_in(http) <= timedelta(minutes=2, seconds=1)
    assert fake.loads == [MODEL]


def test_a_model_unloads_when_its_keep_alive_runs_out(fake: FakeOllama, http: httpx.Client) -> None:
    stream_chat(http, chat_body(keep_alive="1ms"))
    assert eventually(lambda: running(http) == [])
    stream_chat(http, chat_body())
    assert fake.loads == [MODEL, MODEL]


@pytest.mark.parametrize(
    ("keep_alive", "error"),
    [
        ("10", 'time: missing unit in duration "10"'),
        ("-1", 'time: missing unit in duration "-1"'),
        ("soon", 'time: invalid duration "soon"'),
        ("5 m", 'time: unknown unit " m" in duration "5 m"'),
        ("", 'time: invalid duration ""'),
        (True, "Unsupported type: 'bool'"),
        ([1], "Unsupported type: '[]interface {}'"),
    ],
)
def test_a_keep_alive_ollama_cannot_parse_is_a_400(
    fake: FakeOllama, http: httpx.Client, keep_alive: Any, error: str
) -> None:
    response = http.post("/api/chat", json=chat_body(keep_alive=keep_alive))
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert fake.loads == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),
        ("0s", 0.0),
        ("300ms", 0.3),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1h2m3s", 3723.0),
        ("2us", 2e-6),
        ("+4m", 240.0),
        ("-1s", -1.0),
    ],
)
def test_go_durations_parse_as_go_parses_them(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


def test_keep_alive_seconds_reads_numbers_strings_and_absence() -> None:
    assert keep_alive_seconds(None) == 300.0
    assert keep_alive_seconds(0) == 0.0
    assert keep_alive_seconds("45s") == 45.0
    assert keep_alive_seconds(-1) > 9e9  # Go's largest duration, about 292 years
    assert keep_alive_seconds("bad") == 'time: invalid duration "bad"'


# --- long streams ---------------------------------------------------------------------------------


def test_token_count_streams_that_many_generated_tokens(fake: FakeOllama, http: httpx.Client) -> None:
    fake.enqueue(Behavior(token_count=2000))

    lines = stream_chat(http, chat_body())

    *chunks, final = lines
    assert [c["message"]["content"] for c in chunks] == [f"tok{i} " for i in range(2000)]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 2000


def test_token_count_obeys_num_predict_and_non_streamed_answers(fake: FakeOllama, http: httpx.Client) -> None:
    fake.enqueue(Behavior(token_count=100), Behavior(token_count=3))

    limited = stream_chat(http, chat_body(options={"num_predict": 5}))
    whole = http.post("/api/chat", json=chat_body(stream=False)).json()

    assert [c["message"]["content"] for c in limited[:-1]] == ["tok0 ", "tok1 ", "tok2 ", "tok3 ", "tok4 "]
    assert limited[-1]["done_reason"] == "length" and limited[-1]["eval_count"] == 5
    assert whole["message"]["content"] == "tok0 tok1 tok2 "


def test_explicit_tokens_win_over_token_count(fake: FakeOllama, http: httpx.Client) -> None:
    fake.enqueue(Behavior(tokens=["a ", "b"], token_count=50))
    lines = stream_chat(http, chat_body())
    assert [c["message"]["content"] for c in lines[:-1]] == ["a ", "b"]


def test_a_long_slow_token_count_stream_stops_when_the_client_hangs_up(
    fake: FakeOllama, http: httpx.Client
) -> None:
    fake.enqueue(Behavior(token_count=10_000_000, token_delay=0.01))
    with http.stream("POST", "/api/chat", json=chat_body()) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["message"]["content"] == "tok0 "
        assert json.loads(next(lines))["message"]["content"] == "tok1 "
    assert fake.wait_for_hangup()
    assert fake.wait_for_idle()
