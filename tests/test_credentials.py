"""Credentials for an Ollama behind a proxy or in the cloud: sent in the right header, shown nowhere.

``http://user:password@host:port`` in ``OLLAMA_HOST`` becomes HTTP Basic auth and ``OLLAMA_API_KEY``
a bearer token. The password and the key must not reach any output: tool results, log notifications,
stderr, ``doctor``, settings errors, ``--help``, reprs. The end-to-end tests run the real server and
``doctor`` as subprocesses, with logging at DEBUG, and search every byte they wrote.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.models import ChatMessage, ChatRequest
from mcp_ollama.backend_errors import OllamaStatusError, OllamaUnreachable
from mcp_ollama.config import Secret, Settings, SettingsError, load_settings, parse_ollama_host

from .conftest import free_port
from .fake_ollama import Behavior, FakeOllama
from .rawstdio import RawServer

USER = "proxy-user"
# Every character that a URL parser could take for the end of the user, the password or the host.
PASSWORD = "Aa1Secret/Bb2Secret@Cc3Secret:Dd4Secret#Ee5Secret?Ff6Secret%Gg7Secret"
PIECES = [
    "Aa1Secret",
    "Bb2Secret",
    "Cc3Secret",
    "Dd4Secret",
    "Ee5Secret",
    "Ff6Secret",
    "Gg7Secret",
]
API_KEY = "Hh8SecretApiKey.Ii9SecretApiKey"


def encoded_host(url: str, password: str = PASSWORD) -> str:
    scheme, rest = url.split("://")
    return f"{scheme}://{quote(USER, safe='')}:{quote(password, safe='')}@{rest}"


def raw_host(url: str, password: str = PASSWORD) -> str:
    scheme, rest = url.split("://")
    return f"{scheme}://{USER}:{password}@{rest}"


def basic_header(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def leaks(output: bytes | str) -> list[str]:
    """Every form of a secret found in ``output``: whole, encoded, base64'd, JSON-escaped, or a piece."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    forms = {
        PASSWORD,
        quote(PASSWORD, safe=""),
        json.dumps(PASSWORD)[1:-1],
        basic_header().split()[1],
        base64.b64encode(PASSWORD.encode()).decode(),
        API_KEY,
        *PIECES,
        "Ii9SecretApiKey",
    }
    lowered = text.lower()  # a host name is lower-cased: a password taken for a host would be too
    return sorted(form for form in forms if form.lower() in lowered)


# --- reading OLLAMA_HOST ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "url", "user", "password"),
    [
        ("http://u:p@example.com:8080", "http://example.com:8080", "u", "p"),
        ("https://u:p@example.com", "https://example.com:443", "u", "p"),
        ("u:p@gpu-box:1234", "http://gpu-box:1234", "u", "p"),
        ("u:p@gpu-box", "http://gpu-box:11434", "u", "p"),
        ("http://u:p@[::1]:9000", "http://[::1]:9000", "u", "p"),
        ("http://u:p@0.0.0.0:7", "http://127.0.0.1:7", "u", "p"),
        ("http://u:p@example.com:5/ollama/", "http://example.com:5/ollama", "u", "p"),
        # the reserved characters, raw
        ("http://u:pa/ss@example.com:1", "http://example.com:1", "u", "pa/ss"),
        ("http://u:pa@ss@example.com:1", "http://example.com:1", "u", "pa@ss"),
        ("http://u:pa:ss@example.com:1", "http://example.com:1", "u", "pa:ss"),
        ("http://u:a/b@c:d@example.com:1/x", "http://example.com:1/x", "u", "a/b@c:d"),
        ("http://u:a?b#c@example.com:1", "http://example.com:1", "u", "a?b#c"),
        ("u:a://b@example.com:1", "http://example.com:1", "u", "a://b"),
        ("http://u:pa/ss@[::1]:9000", "http://[::1]:9000", "u", "pa/ss"),
        # and percent-encoded
        ("http://u:pa%2Fss@example.com:1", "http://example.com:1", "u", "pa/ss"),
        ("http://u:pa%40ss@example.com:1", "http://example.com:1", "u", "pa@ss"),
        ("http://u:pa%3Ass@example.com:1", "http://example.com:1", "u", "pa:ss"),
        ("http://u:%C3%A9t%C3%A9@example.com:1", "http://example.com:1", "u", "été"),
        ("http://us%40er:p@example.com:1", "http://example.com:1", "us@er", "p"),
        ("http://u:100%25@example.com:1", "http://example.com:1", "u", "100%"),
        # user only, empty user, empty password
        ("http://u@example.com:1", "http://example.com:1", "u", ""),
        ("http://u:@example.com:1", "http://example.com:1", "u", ""),
        ("http://:p@example.com:1", "http://example.com:1", "", "p"),
    ],
)
def test_credentials_come_off_the_url_whatever_characters_the_password_holds(
    value: str, url: str, user: str, password: str
) -> None:
    host = parse_ollama_host(value)

    assert host.url == url
    assert host.user == user
    assert host.password == Secret(password)


@pytest.mark.parametrize("value", ["http://example.com:1", "example.com", "http://@example.com:1", ""])
def test_a_url_without_credentials_has_none(value: str) -> None:
    host = parse_ollama_host(value)
    assert host.user is None
    assert host.password is None


@pytest.mark.parametrize(
    "value",
    [
        f"ftp://{USER}:{PASSWORD}@example.com",
        f"http://{USER}:{PASSWORD}@example.com:99999",
        f"http://{USER}:{PASSWORD}@example.com:port",
        f"{USER}:{PASSWORD}@example.com:port/x",
        f"http://{USER}:{quote(PASSWORD, safe='')}@example.com:-1",
        f"http://{USER}:{PASSWORD}%ff@example.com:1",
        f"http://us%3Aer:{PASSWORD}@example.com:1",
    ],
)
def test_a_settings_error_never_shows_the_password(value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({}, environ={"OLLAMA_HOST": value})

    assert "OLLAMA_HOST" in str(raised.value)
    assert leaks(str(raised.value)) == []
    assert raised.value.__cause__ is None or leaks(str(raised.value.__cause__)) == []


@pytest.mark.parametrize("key", [f"{API_KEY} x", f"{API_KEY}\nX", f"{API_KEY}\x00", f"{API_KEY}é"])
def test_an_unusable_api_key_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(SettingsError, match="OLLAMA_API_KEY") as raised:
        load_settings({}, environ={"OLLAMA_API_KEY": key})

    assert leaks(str(raised.value)) == []


def test_settings_keep_the_secrets_out_of_their_repr_and_the_url() -> None:
    env = {"OLLAMA_HOST": raw_host("http://gpu-box:1"), "OLLAMA_API_KEY": API_KEY}
    settings = load_settings({}, environ=env)

    assert settings.ollama_url == "http://gpu-box:1"
    assert settings.basic_auth() == (USER, PASSWORD)
    assert settings.bearer_token() is None  # one Authorization header: the URL's own credentials win
    assert "OLLAMA_API_KEY is set but not sent" in settings.ollama_auth
    for shown in (repr(settings), str(settings), settings.ollama_auth, f"{settings.ollama_password}"):
        assert leaks(shown) == []
    assert leaks(repr(parse_ollama_host(env["OLLAMA_HOST"]))) == []


def test_the_api_key_comes_from_the_environment_only() -> None:
    settings = load_settings({}, environ={"OLLAMA_API_KEY": f"  {API_KEY}\n"})

    assert settings.bearer_token() == API_KEY
    assert settings.basic_auth() is None
    assert settings.ollama_auth == "a bearer token from OLLAMA_API_KEY"
    assert leaks(repr(settings)) == []
    assert load_settings({}, environ={"OLLAMA_API_KEY": ""}).ollama_api_key is None


def test_help_names_the_api_key_variable_and_has_no_flag_for_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "--help"],
        capture_output=True,
        timeout=30,
        env={"OLLAMA_HOST": raw_host("http://h:1"), "OLLAMA_API_KEY": API_KEY, "PATH": ""},
    )
    assert done.returncode == 0
    assert b"OLLAMA_API_KEY" in done.stdout
    assert b"--ollama-api-key" not in done.stdout
    assert leaks(done.stdout + done.stderr) == []


# --- what the HTTP client sends ---------------------------------------------------------------


def chat_request() -> ChatRequest:
    return ChatRequest(model="llama3:8b", messages=[ChatMessage(role="user", content="hi")])


@pytest.mark.anyio
async def test_basic_auth_reaches_ollama_on_every_endpoint(fake: FakeOllama) -> None:
    async with OllamaClient(fake.url, basic_auth=(USER, PASSWORD)) as client:
        async with client.chat_stream(chat_request()) as chunks:
            [chunk async for chunk in chunks]
        await client.list_models()
        await client.version()
        await client.show("llama3:8b")

    assert [r.headers.get("authorization") for r in fake.requests] == [basic_header()] * 4


@pytest.mark.anyio
async def test_the_api_key_reaches_ollama_as_a_bearer_token(fake: FakeOllama) -> None:
    async with OllamaClient(fake.url, api_key=API_KEY) as client:
        async with client.chat_stream(chat_request()) as chunks:
            [chunk async for chunk in chunks]
        await client.list_models()

    assert [r.headers.get("authorization") for r in fake.requests] == [f"Bearer {API_KEY}"] * 2
    assert API_KEY not in repr(client._http.auth)


@pytest.mark.anyio
async def test_without_credentials_no_authorization_header_is_sent(fake: FakeOllama) -> None:
    async with OllamaClient(fake.url) as client:
        await client.version()

    assert "authorization" not in fake.requests[0].headers


def test_the_client_refuses_credentials_inside_its_url() -> None:
    with pytest.raises(ValueError, match="basic_auth") as raised:
        OllamaClient(raw_host("http://127.0.0.1:1", "Aa1Secret"))
    assert leaks(str(raised.value)) == []


@pytest.mark.anyio
async def test_settings_with_credentials_reach_the_fake_through_the_server(
    fake: FakeOllama, settings: Settings
) -> None:
    from dataclasses import replace

    from .conftest import connect

    address = parse_ollama_host(raw_host(fake.url))
    with_auth = replace(settings, ollama_user=address.user, ollama_password=address.password)
    async with connect(with_auth, "legacy") as client:
        result = await client.call_tool("chat", {"message": "hello"})
    assert result.is_error is not True
    assert {r.headers.get("authorization") for r in fake.requests} == {basic_header()}


@pytest.mark.anyio
async def test_a_rejected_password_says_where_to_fix_it_without_showing_it() -> None:
    # a proxy that refuses the credentials: 401 with a body naming the realm
    fake = FakeOllama()
    with fake:
        fake.default = Behavior(status=401, error="unauthorized")
        async with OllamaClient(fake.url, basic_auth=(USER, PASSWORD)) as client:
            with pytest.raises(OllamaStatusError) as raised:
                async with client.chat_stream(chat_request()) as chunks:
                    [chunk async for chunk in chunks]
    assert "OLLAMA_HOST" in str(raised.value)
    assert leaks(str(raised.value)) == []


@pytest.mark.anyio
async def test_an_unreachable_ollama_is_named_by_its_url_without_credentials() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with OllamaClient(url, basic_auth=(USER, PASSWORD), connect_timeout=2) as client:
        with pytest.raises(OllamaUnreachable) as raised:
            await client.version()
    assert url in str(raised.value)
    assert leaks(str(raised.value)) == []


# --- end to end: every byte the server and doctor write ---------------------------------------


def server_env(host: str, db: Path, **extra: str) -> dict[str, str]:
    return {
        "OLLAMA_HOST": host,
        "OLLAMA_API_KEY": API_KEY,
        "MCP_OLLAMA_DB": str(db),
        "MCP_OLLAMA_LOG_LEVEL": "DEBUG",
        "MCP_OLLAMA_ANSWER_DEADLINE": "20",
        **extra,
    }


def call(server: RawServer, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = server.request("tools/call", {"name": name, "arguments": arguments}, timeout=30)
    result = answer["result"]
    assert isinstance(result, dict)
    return result


def run_session(server: RawServer, fake_url: str | None) -> list[dict[str, Any]]:
    """Calls that succeed (when Ollama is up) and calls that fail, with log notifications at debug."""
    server.initialize()
    assert "error" not in server.request("logging/setLevel", {"level": "debug"})
    results = [
        call(server, "chat", {"message": "hello"}),
        call(server, "chat", {"message": "hello", "model": "missing-model:1b"}),
        call(server, "list_models", {}),
    ]
    server.request("resources/list")
    server.close_stdin()
    assert server.wait(15) == 0
    return results


def all_output(server: RawServer) -> bytes:
    return b"".join(server.stdout_raw) + b"".join(server.stderr_raw)


@pytest.mark.parametrize("form", ["raw", "percent-encoded"])
def test_the_server_sends_the_password_and_never_writes_it(
    fake: FakeOllama, tmp_path: Path, form: str
) -> None:
    host = raw_host(fake.url) if form == "raw" else encoded_host(fake.url)
    with RawServer(server_env(host, tmp_path / "s.sqlite3")) as server:
        chat, missing, models = run_session(server, fake.url)
        output = all_output(server)

    assert not chat.get("isError"), chat
    assert missing.get("isError") and "missing-model:1b" in json.dumps(missing)
    assert fake.url in json.dumps(missing)  # the error names the address, without credentials
    assert not models.get("isError")
    assert b"notifications/message" in output  # the log notifications were on, and were searched
    assert b"DEBUG" in output  # so was the stderr log
    assert leaks(output) == []
    headers = {r.headers.get("authorization") for r in fake.requests}
    assert headers == {basic_header()}


def test_the_api_key_is_sent_and_never_written(fake: FakeOllama, tmp_path: Path) -> None:
    with RawServer(server_env(fake.url, tmp_path / "s.sqlite3")) as server:
        chat, _, _ = run_session(server, fake.url)
        output = all_output(server)

    assert not chat.get("isError"), chat
    assert leaks(output) == []
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {API_KEY}"}


def test_nothing_is_written_when_ollama_is_down_at_that_address(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = server_env(raw_host(url), tmp_path / "s.sqlite3", MCP_OLLAMA_PRELOAD="on")
    with RawServer(env) as server:
        chat, missing, models = run_session(server, None)
        output = all_output(server)

    for result in (chat, missing, models):
        assert result.get("isError")
        assert url in json.dumps(result)
    assert leaks(output) == []


@pytest.mark.parametrize(
    "host",
    [
        f"ftp://{USER}:{PASSWORD}@127.0.0.1:1",
        f"http://{USER}:{PASSWORD}@127.0.0.1:99999",
        f"{USER}:{PASSWORD}@127.0.0.1:port",
    ],
)
@pytest.mark.parametrize("command", [[], ["doctor"]])
def test_a_bad_ollama_host_stops_with_a_message_that_holds_no_password(
    tmp_path: Path, host: str, command: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", *command],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={**server_env(host, tmp_path / "s.sqlite3"), "PATH": ""},
    )
    assert done.returncode == 2
    assert b"OLLAMA_HOST" in done.stderr
    assert leaks(done.stdout + done.stderr) == []


def test_doctor_authenticates_and_never_shows_the_password(fake: FakeOllama, tmp_path: Path) -> None:
    env = {**server_env(encoded_host(fake.url), tmp_path / "s.sqlite3"), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor"], capture_output=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"answers at {fake.url} (HTTP Basic auth as '{USER}'".encode() in done.stdout
    assert leaks(done.stdout + done.stderr) == []
    assert {r.headers.get("authorization") for r in fake.requests} == {basic_header()}

    url = f"http://127.0.0.1:{free_port()}"
    down = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor"],
        capture_output=True,
        timeout=30,
        env={**env, "OLLAMA_HOST": raw_host(url)},
    )
    assert down.returncode == 1
    assert url.encode() in down.stdout
    assert leaks(down.stdout + down.stderr) == []
