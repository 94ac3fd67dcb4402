"""The fake Ollama's model loading, long streams, and the models beyond llama3 (thinking, format,
images, token counts and truncation), over real HTTP with httpx.

No test here measures time: a load is made to wait with a huge ``load_delay`` (and released by
setting it to 0), and waiting is proven by events (an active request, no headers, no load
recorded), never by elapsed seconds.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fake_ollama import (
    DEEPSEEK_R1,
    DEFAULT_THINKING,
    GEMMA3,
    GPT_OSS,
    LLAMA3,
    LLAMA31,
    LLAVA,
    QWEN3,
    READY_MODELS,
    Behavior,
    FakeModel,
    FakeOllama,
    Truncation,
    count_prompt_tokens,
    fit_context,
    go_base64_error,
    inline_think_tokens,
    keep_alive_seconds,
    parse_go_duration,
    schema_instance,
)

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
    forever = keep_alive_seconds(-1)
    assert isinstance(forever, float) and forever > 9e9  # Go's largest duration, about 292 years
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


# --- models beyond llama3 -------------------------------------------------------------------------

IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a picture").decode()
ECHO = "You said: hi. I have seen 0 earlier messages."


@pytest.fixture
def zoo() -> Iterator[FakeOllama]:
    """Every ready-made model, tokens counted as a tokenizer counts them."""
    with FakeOllama(models=list(READY_MODELS.values()), tokenizer=True) as server:
        yield server


@pytest.fixture
def zhttp(zoo: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=zoo.url, timeout=30.0) as client:
        yield client


def ask(model: FakeModel, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return chat_body(model=model.name, messages=[{"role": "user", "content": content}], **extra)


def contents(lines: list[dict[str, Any]]) -> list[str]:
    return [line["message"]["content"] for line in lines if "message" in line and not line["done"]]


def thoughts(lines: list[dict[str, Any]]) -> list[str]:
    return [line["message"]["thinking"] for line in lines if "thinking" in line.get("message", {})]


@pytest.mark.parametrize(
    ("model", "arch", "context", "capabilities"),
    [
        (LLAMA3, "llama", 8192, ["completion"]),
        (LLAMA31, "llama", 131072, ["completion", "tools"]),
        (QWEN3, "qwen3", 40960, ["completion", "tools", "thinking"]),
        (GPT_OSS, "gptoss", 131072, ["completion", "tools", "thinking"]),
        (DEEPSEEK_R1, "qwen2", 131072, ["completion", "thinking"]),
        (LLAVA, "llama", 4096, ["completion", "vision"]),
        (GEMMA3, "gemma3", 131072, ["completion", "vision"]),
    ],
    ids=lambda value: value.name if isinstance(value, FakeModel) else None,
)
def test_show_describes_each_ready_made_model(
    zhttp: httpx.Client, model: FakeModel, arch: str, context: int, capabilities: list[str]
) -> None:
    shown = zhttp.post("/api/show", json={"model": model.name})

    assert shown.status_code == 200
    body = shown.json()
    assert body["model_info"][f"{arch}.context_length"] == context
    assert body["model_info"]["general.architecture"] == arch
    assert body["capabilities"] == capabilities
    assert body["details"]["family"] == arch
    assert body["details"]["quantization_level"] == model.quantization_level


def test_tags_lists_every_ready_made_model_and_show_of_an_unknown_one_is_404(zhttp: httpx.Client) -> None:
    tags = zhttp.get("/api/tags").json()["models"]
    assert [t["name"] for t in tags] == [m.name for m in READY_MODELS.values()]
    assert len({t["digest"] for t in tags}) == len(tags)

    missing = zhttp.post("/api/show", json={"model": "phi3:mini"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'phi3:mini' not found"}


# --- token counts and truncation -------------------------------------------------------------------


def test_count_prompt_tokens_follows_the_tokenizer_density_template_and_images() -> None:
    messages = [
        {"role": "system", "content": "x" * 10},  # ceil(10 / 4) = 3, + 5
        {"role": "user", "content": "y" * 8, "images": [IMAGE, IMAGE]},  # 2 + 5 + 2 * 576
    ]
    assert count_prompt_tokens(messages) == 3 + 5 + 2 + 5 + 2 * 576
    dense = FakeModel(chars_per_token=2.0)
    assert count_prompt_tokens(messages, dense) == 5 + 5 + 4 + 5 + 2 * 576
    assert count_prompt_tokens(messages, GEMMA3) == 3 + 5 + 2 + 5 + 2 * 256
    assert count_prompt_tokens([]) == 0


def test_prompt_eval_count_is_the_tokenizer_count_of_the_messages(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    body = chat_body(
        model=QWEN3.name,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "second question"},
        ],
    )
    final = stream_chat(zhttp, body)[-1]
    whole = zhttp.post("/api/chat", json={**body, "stream": False}).json()

    expected = 3 + 2 + 2 + 4 + 4 * 5
    assert zoo.prompt_tokens(body) == expected
    assert final["prompt_eval_count"] == expected
    assert whole["prompt_eval_count"] == expected
    assert zoo.truncations == []


def test_a_denser_tokenizer_counts_more_tokens() -> None:
    dense = FakeModel(name="dense:1b", chars_per_token=2.0)
    with FakeOllama(models=[dense], tokenizer=True) as fake, httpx.Client(base_url=fake.url) as http:
        body = ask(dense, "x" * 40)
        final = stream_chat(http, body)[-1]
    assert final["prompt_eval_count"] == 20 + 5 == fake.prompt_tokens(body)


def test_without_tokenizer_mode_prompt_eval_count_counts_words_and_nothing_is_dropped(
    fake: FakeOllama, http: httpx.Client
) -> None:
    fake.tokenizer = False
    history = [{"role": "user", "content": "word " * 3000}] * 3
    final = stream_chat(http, chat_body(messages=[*history, {"role": "user", "content": "hi"}]))[-1]
    assert final["prompt_eval_count"] == 9001
    assert fake.truncations == []


def conversation(turns: int, size: int) -> list[dict[str, Any]]:
    """A system prompt, ``turns`` user/assistant pairs of ``size`` characters each, a last question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "S" * 40}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"q{i}".ljust(size, "q")})
        messages.append({"role": "assistant", "content": f"a{i}".ljust(size, "a")})
    messages.append({"role": "user", "content": "and now?"})
    return messages


def test_a_prompt_over_num_ctx_loses_its_oldest_messages_silently(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    messages = conversation(turns=5, size=400)  # 105 tokens a message, 1050 of history
    body = chat_body(model=QWEN3.name, messages=messages, options={"num_ctx": 512})

    lines = stream_chat(zhttp, body)

    # 15 (system) + 7 (last) + 4 * 105 = 442 fits 512; one message more would not.
    kept = [messages[0], *messages[-5:]]
    assert "".join(contents(lines)) == "You said: and now?. I have seen 4 earlier messages."
    assert lines[-1]["prompt_eval_count"] == 442 == count_prompt_tokens(kept, QWEN3)
    assert zoo.truncations == [
        Truncation(
            model=QWEN3.name,
            num_ctx=512,
            tokens_before=zoo.prompt_tokens(body),
            tokens_after=442,
            messages_dropped=6,
        )
    ]
    assert zoo.chat_requests[-1]["messages"] == messages, "the request is recorded whole"

    zoo.reset()
    assert zoo.truncations == []
    assert zoo.tokenizer is True, "reset() keeps the constructor's tokenizer mode"


def test_without_num_ctx_the_window_is_4096_and_never_more_than_the_model_was_trained_with(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    messages = conversation(turns=30, size=400)  # about 6300 tokens
    stream_chat(zhttp, chat_body(model=QWEN3.name, messages=messages))
    stream_chat(zhttp, chat_body(model=LLAVA.name, messages=messages, options={"num_ctx": 8192}))
    stream_chat(zhttp, chat_body(model=QWEN3.name, messages=messages, options={"num_ctx": 8192}))

    assert [(t.model, t.num_ctx) for t in zoo.truncations] == [(QWEN3.name, 4096), (LLAVA.name, 4096)]
    assert all(t.tokens_after <= 4096 < t.tokens_before for t in zoo.truncations)


def test_a_last_message_too_long_for_the_window_is_kept_and_cut_by_the_runner(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "old"},
        {"role": "user", "content": "z" * 10_000},
    ]
    final = stream_chat(zhttp, chat_body(model=QWEN3.name, messages=messages, options={"num_ctx": 1024}))[-1]

    assert final["prompt_eval_count"] == 1024
    (record,) = zoo.truncations
    assert record.messages_dropped == 1 and record.tokens_after == 1024, "the system message stays"


def test_fit_context_keeps_system_messages_and_the_newest_run_that_fits() -> None:
    messages = [
        {"role": "system", "content": "a" * 20},  # 10 tokens each
        {"role": "user", "content": "b" * 20},
        {"role": "system", "content": "c" * 20},
        {"role": "user", "content": "d" * 20},
        {"role": "assistant", "content": "e" * 20},
        {"role": "user", "content": "f" * 20},
    ]
    assert fit_context(messages, LLAMA3, 40) == ([messages[0], messages[2], *messages[4:]], 40)
    assert fit_context(messages, LLAMA3, 39) == ([messages[0], messages[2], messages[5]], 30)
    assert fit_context(messages, LLAMA3, 60) == (messages, 60)
    assert fit_context(messages, LLAMA3, 5) == ([messages[0], messages[2], messages[5]], 5)
    assert fit_context([], LLAMA3, 5) == ([], 0)


# --- thinking ------------------------------------------------------------------------------------


def test_think_true_streams_the_thinking_before_the_content(zhttp: httpx.Client) -> None:
    lines = stream_chat(zhttp, ask(QWEN3, think=True))

    thinking = ["Let ", "me ", "think ", "about ", "what ", "the ", "user ", "said."]
    assert thoughts(lines) == thinking
    assert [line["message"] for line in lines[: len(thinking)]] == [
        {"role": "assistant", "content": "", "thinking": token} for token in thinking
    ]
    assert "".join(contents(lines)) == ECHO
    assert all("thinking" not in line["message"] for line in lines[len(thinking) :])
    assert lines[-1]["eval_count"] == len(thinking) + 9


def test_a_non_streamed_thinking_answer_carries_the_whole_thinking(zhttp: httpx.Client) -> None:
    whole = zhttp.post("/api/chat", json=ask(QWEN3, think=True, stream=False)).json()
    assert whole["message"] == {"role": "assistant", "content": ECHO, "thinking": DEFAULT_THINKING}
    assert whole["eval_count"] == 8 + 9


def test_scripted_thinking_and_no_thinking(zoo: FakeOllama, zhttp: httpx.Client) -> None:
    zoo.enqueue(Behavior(thinking="Hmm, tricky.", reply="Fine."), Behavior(thinking=""))
    scripted = stream_chat(zhttp, ask(QWEN3, think=True))
    silent = stream_chat(zhttp, ask(QWEN3, think=True))

    assert thoughts(scripted) == ["Hmm, ", "tricky."]
    assert contents(scripted)[-1] == "Fine."
    assert thoughts(silent) == []
    assert "".join(contents(silent)) == ECHO


@pytest.mark.parametrize("think", [False, None], ids=["false", "absent"])
def test_a_thinking_model_not_asked_to_think_does_not(zhttp: httpx.Client, think: bool | None) -> None:
    body = ask(QWEN3) if think is None else ask(QWEN3, think=think)
    lines = stream_chat(zhttp, body)
    assert thoughts(lines) == []
    assert "".join(contents(lines)) == ECHO


def test_think_sent_to_a_model_without_thinking_is_a_400(zhttp: httpx.Client) -> None:
    for think in (True, "low"):
        response = zhttp.post("/api/chat", json=ask(LLAMA3, think=think))
        assert response.status_code == 400
        assert response.json() == {"error": '"llama3:8b" does not support thinking'}
    assert zhttp.post("/api/chat", json=ask(LLAMA3, think=False, stream=False)).status_code == 200


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_gpt_oss_takes_think_levels_and_qwen3_does_not(zhttp: httpx.Client, level: str) -> None:
    lines = stream_chat(zhttp, ask(GPT_OSS, think=level))
    assert "".join(thoughts(lines)) == DEFAULT_THINKING
    assert "".join(contents(lines)) == ECHO

    refused = zhttp.post("/api/chat", json=ask(QWEN3, think=level))
    assert refused.status_code == 400
    assert refused.json() == {"error": f'think value "{level}" is not supported for this model'}


@pytest.mark.parametrize(
    ("think", "error"),
    [
        ("max", 'invalid think value: "max" (must be "high", "medium", "low", true, or false)'),
        ("true", 'invalid think value: "true" (must be "high", "medium", "low", true, or false)'),
        (1, 'think must be a boolean or string ("high", "medium", "low", true, or false)'),
    ],
)
def test_a_think_value_ollama_cannot_read_is_a_400(zhttp: httpx.Client, think: Any, error: str) -> None:
    response = zhttp.post("/api/chat", json=ask(GPT_OSS, think=think))
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_faults_count_content_tokens_after_all_the_thinking(zoo: FakeOllama, zhttp: httpx.Client) -> None:
    zoo.enqueue(Behavior(reply="one two three", error_after=1, error="boom"))
    lines = stream_chat(zhttp, ask(QWEN3, think=True))
    assert "".join(thoughts(lines)) == DEFAULT_THINKING
    assert [line["message"]["content"] for line in lines[8:-1]] == ["one "]
    assert lines[-1] == {"error": "boom"}

    zoo.enqueue(Behavior(cut_after=0))
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        zhttp.stream("POST", "/api/chat", json=ask(QWEN3, think=True)) as response,
    ):
        received.extend(line for line in response.iter_lines() if line)
    assert "".join(json.loads(line)["message"]["thinking"] for line in received) == DEFAULT_THINKING


def test_num_predict_counts_thinking_tokens_first(zhttp: httpx.Client) -> None:
    short = stream_chat(zhttp, ask(QWEN3, think=True, options={"num_predict": 3}))
    longer = stream_chat(zhttp, ask(QWEN3, think=True, options={"num_predict": 10}))

    assert thoughts(short) == ["Let ", "me ", "think "]
    assert contents(short) == [""] * 3, "no content at all"
    assert short[-1]["done_reason"] == "length" and short[-1]["eval_count"] == 3
    assert contents(longer)[8:] == ["You ", "said: "]
    assert longer[-1]["eval_count"] == 10


def test_an_inline_thinker_writes_think_tags_into_the_content_in_pieces(zhttp: httpx.Client) -> None:
    lines = stream_chat(zhttp, ask(DEEPSEEK_R1))

    tokens = contents(lines)
    assert tokens[:3] == ["<th", "ink>\n", "Let "]
    assert tokens[9:13] == ["said.", "\n</th", "ink>\n\n", "You "]
    assert "".join(tokens) == f"<think>\n{DEFAULT_THINKING}\n</think>\n\n{ECHO}"
    assert thoughts(lines) == []
    assert lines[-1]["eval_count"] == len(tokens)

    whole = zhttp.post("/api/chat", json=ask(DEEPSEEK_R1, stream=False)).json()
    assert whole["message"] == {"role": "assistant", "content": "".join(tokens)}


def test_an_inline_thinker_asked_about_thinking_answers_like_any_thinking_model(zhttp: httpx.Client) -> None:
    asked = stream_chat(zhttp, ask(DEEPSEEK_R1, think=True))
    refused = stream_chat(zhttp, ask(DEEPSEEK_R1, think=False))

    assert "".join(thoughts(asked)) == DEFAULT_THINKING
    assert "".join(contents(asked)) == ECHO
    assert thoughts(refused) == []
    assert "".join(contents(refused)) == ECHO


def test_inline_think_tokens_rebuild_the_tagged_text() -> None:
    for thinking in ("", "one", "a b  c\n"):
        assert "".join(inline_think_tokens(thinking)) == f"<think>\n{thinking}\n</think>\n\n"


def test_inline_thinking_with_a_long_token_count_stays_lazy(zoo: FakeOllama, zhttp: httpx.Client) -> None:
    zoo.enqueue(Behavior(token_count=10_000_000))
    lines = stream_chat(zhttp, ask(DEEPSEEK_R1, options={"num_predict": 14}))
    assert contents(lines)[-3:] == ["ink>\n\n", "tok0 ", "tok1 "]
    assert lines[-1]["done_reason"] == "length"


# --- format ----------------------------------------------------------------------------------------


def test_format_json_answers_a_json_object_in_several_tokens(zhttp: httpx.Client) -> None:
    lines = stream_chat(zhttp, ask(LLAMA3, format="json"))
    tokens = contents(lines)
    assert len(tokens) > 3
    assert json.loads("".join(tokens)) == {"answer": ECHO}


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 18},
        "score": {"type": "number", "maximum": 1},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}},
        "pet": {"$ref": "#/$defs/Pet"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "age", "pet", "extra"],
    "$defs": {"Pet": {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]}},
}


def test_format_schema_answers_an_instance_of_the_schema(zhttp: httpx.Client) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    streamed = stream_chat(zhttp, ask(QWEN3, format=SCHEMA))
    whole = zhttp.post("/api/chat", json=ask(QWEN3, format=SCHEMA, stream=False)).json()

    value = json.loads("".join(contents(streamed)))
    assert len(contents(streamed)) > 3
    assert value == {
        "name": "text",
        "age": 18,
        "score": 1,
        "ok": True,
        "tags": ["red"],
        "pet": {"kind": "cat"},
        "note": "text",
        "extra": "text",
    }
    jsonschema.validate(value, SCHEMA)
    assert json.loads(whole["message"]["content"]) == value


def test_schema_instance_handles_scalars_lists_and_min_items() -> None:
    assert schema_instance({"type": "string"}) == "text"
    assert schema_instance({"type": "number"}) == 1.5
    assert schema_instance({"type": ["null", "integer"]}) == 1
    assert schema_instance({"type": "array", "items": {"type": "boolean"}, "minItems": 2}) == [True, True]
    assert schema_instance({"enum": [3, 4]}) == 3
    assert schema_instance({}) == "text"


def test_a_scripted_reply_wins_over_format_even_when_it_is_not_json(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    zoo.enqueue(Behavior(reply="not json {"))
    lines = stream_chat(zhttp, ask(LLAMA3, format="json"))
    assert "".join(contents(lines)) == "not json {"


@pytest.mark.parametrize("fmt", [None, ""], ids=["null", "empty"])
def test_an_empty_format_is_no_format(zhttp: httpx.Client, fmt: Any) -> None:
    lines = stream_chat(zhttp, ask(LLAMA3, format=fmt))
    assert "".join(contents(lines)) == ECHO


@pytest.mark.parametrize("fmt", ["xml", "JSON", 5, ["json"], True])
def test_a_format_that_is_neither_json_nor_a_schema_is_a_400(zhttp: httpx.Client, fmt: Any) -> None:
    response = zhttp.post("/api/chat", json=ask(LLAMA3, format=fmt))
    assert response.status_code == 400
    assert response.json() == {"error": 'invalid format: expected "json" or a valid JSON schema'}


# --- images --------------------------------------------------------------------------------------


def test_a_vision_model_sees_the_images_of_the_last_user_message(
    zoo: FakeOllama, zhttp: httpx.Client
) -> None:
    one = ask(LLAVA, "what is this?")
    one["messages"][0]["images"] = [IMAGE]
    two = chat_body(
        model=GEMMA3.name,
        messages=[
            {"role": "user", "content": "look", "images": [IMAGE]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "and these?", "images": [IMAGE, IMAGE]},
        ],
    )

    first = stream_chat(zhttp, one)
    second = stream_chat(zhttp, two)
    history_only = stream_chat(
        zhttp, {**two, "messages": [*two["messages"], {"role": "user", "content": "so?"}]}
    )

    assert (
        "".join(contents(first)) == "You said: what is this?. I have seen 0 earlier messages. I see 1 image."
    )
    assert "".join(contents(second)).endswith("I have seen 2 earlier messages. I see 2 images.")
    assert "".join(contents(history_only)).endswith("I have seen 3 earlier messages.")
    assert first[-1]["prompt_eval_count"] == 4 + 5 + 576
    assert second[-1]["prompt_eval_count"] == zoo.prompt_tokens(two) == 1 + 1 + 3 + 15 + 3 * 256
    assert zoo.chat_requests[0]["messages"][0]["images"] == [IMAGE]
    assert zoo.chat_requests[1]["messages"][2]["images"] == [IMAGE, IMAGE]


def test_images_sent_to_a_model_without_vision_are_a_400(zhttp: httpx.Client) -> None:
    body = ask(QWEN3)
    body["messages"][0]["images"] = [IMAGE]
    response = zhttp.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": '"qwen3:8b" does not support images'}
    body["messages"][0]["images"] = []
    assert zhttp.post("/api/chat", json={**body, "stream": False}).status_code == 200


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("data:image/png;base64," + IMAGE, "illegal base64 data at input byte 4"),
        ("aGk", "illegal base64 data at input byte 0"),
        ("aGk=x", "illegal base64 data at input byte 4"),
        ("aG k", "illegal base64 data at input byte 2"),
        ("aG=k", "illegal base64 data at input byte 2"),
        ("aGVsbG8-", "illegal base64 data at input byte 7"),
        (
            5,
            "json: cannot unmarshal number into Go struct field Message.messages.images of type "
            + "api.ImageData",
        ),
    ],
)
def test_an_image_that_is_not_strict_base64_is_a_400(zhttp: httpx.Client, image: Any, error: str) -> None:
    body = ask(LLAVA)
    body["messages"][0]["images"] = [IMAGE, image]
    response = zhttp.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_images_that_are_not_a_list_are_a_400(zhttp: httpx.Client) -> None:
    body = ask(LLAVA)
    body["messages"][0]["images"] = IMAGE
    response = zhttp.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "json: cannot unmarshal string into Go struct field Message.messages.images of type "
        "[]api.ImageData"
    }


@pytest.mark.parametrize(
    "data", [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), b"\xff" * 31], ids=lambda d: str(len(d))
)
def test_go_base64_accepts_what_python_encodes_and_skips_newlines(data: bytes) -> None:
    encoded = base64.b64encode(data).decode()
    assert go_base64_error(encoded) is None
    assert go_base64_error("\r\n".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))) is None
    if encoded:
        assert go_base64_error(encoded.rstrip("=") + ("" if encoded.endswith("=") else "*")) is not None


# --- the script ----------------------------------------------------------------------------------


def test_the_script_serves_the_ready_made_models_it_is_given() -> None:
    script = Path(__file__).with_name("fake_ollama")  # the package's directory: its __main__.py
    proc = subprocess.Popen(
        [sys.executable, str(script), "--models", "qwen3,llava:7b", "--tokenizer"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        with httpx.Client(base_url=line.split()[-1], timeout=10) as http:
            assert [m["name"] for m in http.get("/api/tags").json()["models"]] == ["qwen3:8b", "llava:7b"]
            body = chat_body(
                model="qwen3:8b", messages=conversation(turns=3, size=400), options={"num_ctx": 256}
            )
            assert "".join(contents(stream_chat(http, body))).endswith("I have seen 2 earlier messages.")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "truncating input messages" in err


def test_the_script_refuses_an_unknown_model() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.fake_ollama", "--models", "qwen3,phi3"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "unknown model(s) phi3" in done.stderr
