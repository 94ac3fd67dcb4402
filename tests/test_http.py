"""``serve --http``: the real server in a subprocess on loopback, the SDK's streamable HTTP client in
both eras, bearer tokens, DNS-rebinding protection, ``/healthz`` and the demo's ``POST /chat``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    PromptReference,
    ResourceListChangedNotification,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
)

from mcp_ollama.cli import main
from mcp_ollama.config import Settings
from mcp_ollama.server.principal import principal
from mcp_ollama.store import ChatStore, JobRecord, StoredMessage
from mcp_ollama.transports.auth import add_token, hash_token
from mcp_ollama.transports.chat_endpoint import MAX_BODY_BYTES
from mcp_ollama.transports.exposure import check_exposure
from mcp_ollama.transports.http import build_http_app

from .conftest import INITIALIZE, MCP_HEADERS, client_for, free_port
from .fake_ollama import LLAMA3, QWEN3, Behavior, FakeOllama
from .test_tasks import SLOW, TaskHandle, TasksRequester, request, task_call

READY_LIMIT = 60.0
"""Generous: a loaded CI machine may take long to import the SDK; the loop returns as soon as it is up."""
OPERATOR_TOKEN = "operator-token-for-the-tests-0123456789"


@dataclass
class HttpServer:
    url: str
    tokens_file: Path
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def auth(self, name: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def _child_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MCP_OLLAMA_", "OLLAMA_")) and k != "HOME"
    }
    return {**env, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}


@pytest.fixture(scope="module")
def server(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One server for the module, with tokens for alice and bob, on a free loopback port."""
    root = tmp_path_factory.mktemp("http")
    tokens_file = root / "tokens"
    tokens = {name: add_token(tokens_file, name) for name in ("alice", "bob")}
    port = free_port()
    argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port)]
    argv += ["--tokens-file", str(tokens_file), "--db", str(root / "s.sqlite3")]
    argv += ["--ollama-host", _fake_server.url, "--preload", "off", "--log-level", "INFO"]
    process = subprocess.Popen(argv, env=_child_env(root), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        yield HttpServer(url, tokens_file, tokens, process)
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert out == b"", "nothing on stdout: logs go to stderr"


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_LIMIT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited while starting"
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the server did not answer /healthz within {READY_LIMIT:g} s")


@asynccontextmanager
async def mcp_client(
    server: HttpServer, era: str, name: str = "alice", **kwargs: Any
) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, in ``era``, with ``name``'s token (``kwargs``: ``Client``'s)."""
    async with (
        create_mcp_http_client(headers=server.auth(name)) as http,
        client_for(streamable_http_client(server.mcp_url, http_client=http), era, **kwargs) as client,
    ):
        yield client


def test_healthz_answers_without_auth(server: HttpServer) -> None:
    answer = httpx.get(server.url + "/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["version"]


@pytest.mark.anyio
async def test_tools_and_a_chat_over_http(server: HttpServer, fake: FakeOllama, era: str) -> None:
    async with mcp_client(server, era) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        answer = await client.call_tool("chat", {"message": "hello over http"})
    assert {"chat", "chat_result", "cancel_chat", "list_models"} <= tools
    assert answer.is_error is False
    assert answer.structured_content is not None and answer.structured_content["status"] == "complete"
    assert fake.chat_requests[-1]["messages"][-1]["content"] == "hello over http"


@pytest.mark.anyio
async def test_progress_and_cancel_over_http(server: HttpServer, fake: FakeOllama, era: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    fake.enqueue(Behavior(token_count=2000, token_delay=0.02))
    async with mcp_client(server, era) as client:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await client.call_tool(
                    "chat", {"message": "long", "session_id": f"cancel-{era}"}, progress_callback=on_progress
                )

            tg.start_soon(call)
            with anyio.fail_after(10):
                while len(progress) < 2:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(fake.wait_for_hangup, 10.0)
        listed = await client.list_resources()
    assert progress == sorted(set(progress))
    assert all(r.uri != f"chat://sessions/cancel-{era}" for r in listed.resources)


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize("token", [None, "not-a-token", "alice"])
def test_no_or_bad_token_gets_401_naming_nobody(server: HttpServer, path: str, token: str | None) -> None:
    # "alice" is a name, not a token: a name is no credential
    headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    answer = httpx.post(server.url + path, json=INITIALIZE, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "alice" not in answer.text and "bob" not in answer.text


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize(
    ("header", "value", "status"),
    [("Host", "evil.example", 421), ("Origin", "http://evil.example", 403)],
)
def test_dns_rebinding_is_refused(
    server: HttpServer, path: str, header: str, value: str, status: int
) -> None:
    headers = {**MCP_HEADERS, **server.auth(), header: value}
    body = INITIALIZE if path == "/mcp" else {"message": "hi"}
    answer = httpx.post(server.url + path, json=body, headers=headers)
    assert answer.status_code == status
    allowed = httpx.post(server.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **server.auth()})
    assert allowed.status_code == 200


def test_post_chat_remembers_the_first_call(server: HttpServer, fake: FakeOllama) -> None:
    with httpx.Client(base_url=server.url, headers=server.auth(), timeout=30) as http:
        first = http.post("/chat", json={"message": "My name is Ada."})
        assert first.status_code == 200, first.text
        sid = first.json()["session_id"]
        assert first.json()["answer"]
        second = http.post("/chat", json={"session_id": sid, "message": "What is my name?"})
    assert second.status_code == 200, second.text
    assert second.json()["session_id"] == sid
    sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
    assert "My name is Ada." in sent and first.json()["answer"] in sent
    assert sent[-1] == "What is my name?"


def test_post_chat_errors_are_json_sentences(server: HttpServer, fake: FakeOllama) -> None:
    with httpx.Client(base_url=server.url, headers=server.auth(), timeout=30) as http:
        bad_id = http.post("/chat", json={"session_id": "../etc", "message": "hi"})
        no_message = http.post("/chat", json={"session": "x"})
        fake.enqueue(Behavior(status=500, error="runner crashed"))
        ollama_failed = http.post("/chat", json={"message": "hi"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]
    assert no_message.status_code == 400 and "session" in no_message.json()["error"]
    assert ollama_failed.status_code == 502 and "runner crashed" in ollama_failed.json()["error"]


def test_tokens_add_prints_a_token_that_works_at_once(server: HttpServer) -> None:
    argv = [sys.executable, "-m", "mcp_ollama", "tokens", "add", "carol"]
    done = subprocess.run([*argv, "--tokens-file", str(server.tokens_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    stored = server.tokens_file.read_text(encoding="utf-8")
    assert token not in stored and hash_token(token).hex() in stored
    answer = httpx.post(
        server.url + "/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    again = subprocess.run([*argv, "--tokens-file", str(server.tokens_file)], capture_output=True, text=True)
    assert again.returncode == 2 and "already" in again.stderr and again.stdout == ""


def test_tokens_list_and_revoke_stop_a_token_at_once(server: HttpServer) -> None:
    cli = [sys.executable, "-m", "mcp_ollama", "tokens"]
    where = ["--tokens-file", str(server.tokens_file)]
    added = subprocess.run([*cli, "add", "dave", "--admin", *where], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    dave = {"Authorization": f"Bearer {added.stdout.strip()}"}
    assert httpx.post(server.url + "/chat", json={"message": "hi"}, headers=dave).status_code == 200

    listed = subprocess.run([*cli, "list", *where], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    roles = dict(line.split() for line in listed.stdout.splitlines())
    assert roles["alice"] == roles["bob"] == "chat" and roles["dave"] == "admin"
    assert added.stdout.strip() not in listed.stdout and "sha256" not in listed.stdout

    revoked = subprocess.run([*cli, "revoke", "dave", *where], capture_output=True, text=True)
    assert revoked.returncode == 0 and "dave" in revoked.stderr, revoked.stderr
    assert httpx.post(server.url + "/chat", json={"message": "hi"}, headers=dave).status_code == 401
    assert (
        httpx.post(server.url + "/chat", json={"message": "hi"}, headers=server.auth("bob")).status_code
        == 200
    )
    again = subprocess.run([*cli, "revoke", "dave", *where], capture_output=True, text=True)
    assert again.returncode == 1 and "no token named 'dave'" in again.stderr and "alice" in again.stderr
    nothing = subprocess.run(cli, capture_output=True, text=True)
    assert nothing.returncode == 2 and "tokens add NAME | list | revoke NAME" in nothing.stderr


def test_a_port_in_use_is_one_sentence_with_the_fix(tmp_path: Path) -> None:
    """Not uvicorn's raw OSError and exit 3 after the server started: refused before anything starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "never.sqlite3"
        argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port), "--db", str(db)]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=READY_LIMIT, env=_child_env(tmp_path)
        )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line == (
        f"mcp-ollama: Port {port} on 127.0.0.1 is already in use (another `mcp-ollama serve --http`, or "
        "another program): stop that, or choose another port with --port N (MCP_OLLAMA_PORT)."
    )
    assert not db.exists()  # nothing started: no store opened, no model preloaded


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "::"])
def test_binding_beyond_loopback_without_tokens_is_refused(bind: str, tmp_path: Path) -> None:
    # In a child process with a time limit: if the rule broke, the server would serve for ever and
    # the test must fail, not hang.
    argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--bind", bind, "--port", str(free_port())]
    try:
        done = subprocess.run(
            argv, env=_child_env(tmp_path), capture_output=True, text=True, timeout=READY_LIMIT, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve --http --bind {bind} without a tokens file did not refuse: it went on serving")
    assert done.returncode == 2, done.stderr
    assert "--tokens-file" in done.stderr and done.stdout == ""


def test_a_missing_tokens_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope")
    assert main(["serve", "--http", "--port", str(free_port()), "--tokens-file", missing]) == 2
    assert "tokens add" in capsys.readouterr().err


def test_principal_is_the_token_name_or_local() -> None:
    def context(request: object) -> ServerRequestContext[None]:
        return ServerRequestContext(
            session=None,  # type: ignore[arg-type]
            lifespan_context=None,
            protocol_version="2025-11-25",
            method="tools/call",
            request=request,
        )

    user = AuthenticatedUser(AccessToken(token="t", client_id="alice", subject="alice", scopes=[]))
    assert principal(context(SimpleNamespace(scope={"type": "http", "user": user}))) == "alice"
    assert principal(context(SimpleNamespace(scope={"type": "http"}))) == "local"
    assert principal(context(None)) == "local"


def test_loopback_without_tokens_is_allowed() -> None:
    for bind in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        check_exposure(bind, None)


# ---------------------------------------------------------------------------- principals


async def _outcome(call: Any) -> tuple[str, str]:
    """What a call answered, as (kind, text): an isError result's text, a protocol error's message."""
    try:
        result = await call
    except MCPError as exc:
        return f"error {exc.code}", exc.message
    if getattr(result, "is_error", False):
        return "isError", " ".join(getattr(block, "text", "") for block in result.content)
    return "ok", ""


def _same(mine: tuple[str, str], absent: tuple[str, str], sid: str) -> None:
    """Another principal's session answers exactly as a session that does not exist."""
    assert mine[0] == absent[0] != "ok"
    assert mine[1].replace(sid, "ID") == absent[1].replace("no-such-session", "ID")


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:mcp.MCPDeprecationWarning")
async def test_two_principals_cannot_see_each_others_sessions_by_any_path(
    server: HttpServer, fake: FakeOllama, era: str
) -> None:
    mine, shared = f"alice-only-{era}", f"shared-{era}"
    async with mcp_client(server, era, "alice") as alice:
        await alice.call_tool("chat", {"message": "alice's secret", "session_id": mine})
        await alice.call_tool("chat", {"message": "alice in shared", "session_id": shared})
    async with mcp_client(server, era, "bob") as bob:
        bob_first = await bob.call_tool("chat", {"message": "bob in shared", "session_id": shared})
        assert bob_first.structured_content is not None
        assert bob_first.structured_content["new_session"] is True  # his own 'shared', not alice's
        await bob.call_tool("chat", {"message": "bob again", "session_id": shared})
        sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
        assert "bob in shared" in sent and "alice in shared" not in sent

        listed = {r.uri for r in (await bob.list_resources()).resources}
        assert f"chat://sessions/{shared}" in listed and f"chat://sessions/{mine}" not in listed
        completed = await bob.complete(
            ResourceTemplateReference(type="ref/resource", uri="chat://sessions/{session_id}"),
            {"name": "session_id", "value": "alice-only"},
        )
        assert completed.completion.values == []
        for absent in ("no-such-session",):
            _same(
                await _outcome(bob.read_resource(f"chat://sessions/{mine}")),
                await _outcome(bob.read_resource(f"chat://sessions/{absent}")),
                mine,
            )
            for tool in ("chat_result", "cancel_chat", "delete_session", "clear_session"):
                _same(
                    await _outcome(bob.call_tool(tool, {"session_id": mine})),
                    await _outcome(bob.call_tool(tool, {"session_id": absent})),
                    mine,
                )
            _same(
                await _outcome(bob.get_prompt("continue_session", {"session_id": mine})),
                await _outcome(bob.get_prompt("continue_session", {"session_id": absent})),
                mine,
            )
            if era == "legacy":  # resources/subscribe is a handshake-era method
                _same(
                    await _outcome(bob.subscribe_resource(f"chat://sessions/{mine}")),
                    await _outcome(bob.subscribe_resource(f"chat://sessions/{absent}")),
                    mine,
                )
    async with mcp_client(server, era, "alice") as alice:  # nothing bob did touched alice's
        read = await alice.read_resource(f"chat://sessions/{mine}")
        text = "".join(getattr(c, "text", "") for c in read.contents)
        assert "alice's secret" in text and "bob" not in text


@pytest.mark.anyio
async def test_a_task_of_one_principal_is_not_found_by_another(server: HttpServer) -> None:
    async with mcp_client(server, "legacy", "alice") as alice:
        task = (await task_call(alice, "chat", {"message": "a task"}))["task"]
        own = await request(alice, "tasks/get", {"taskId": task["taskId"]})
    async with mcp_client(server, "legacy", "bob") as bob:
        theirs = await _outcome(request(bob, "tasks/get", {"taskId": task["taskId"]}))
        absent = await _outcome(request(bob, "tasks/get", {"taskId": "0" * 32}))
        listed = await request(bob, "tasks/list", {})
    assert own["taskId"] == task["taskId"]
    assert theirs == absent and theirs[0] == f"error {INVALID_PARAMS}"
    assert all(t["taskId"] != task["taskId"] for t in listed["tasks"])


def test_post_chat_sessions_are_per_principal(server: HttpServer, fake: FakeOllama) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = http.post(
            "/chat", json={"session_id": "demo", "message": "alice here"}, headers=server.auth()
        )
        other = http.post(
            "/chat", json={"session_id": "demo", "message": "bob here"}, headers=server.auth("bob")
        )
    assert first.status_code == other.status_code == 200
    sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
    assert "bob here" in sent and "alice here" not in sent


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readmes_two_curl_commands_work_against_the_team_server(
    server: HttpServer, fake: FakeOllama
) -> None:
    """The original demo's two calls, exactly as the README writes them (port, token and id filled in)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^curl -s localhost:8765/chat .*\\\n\s+-d '.*'$", readme, flags=re.MULTILINE)
    assert len(commands) == 2, "the README's two curl commands"
    port = server.url.rsplit(":", 1)[1]
    env = {**os.environ, "TOKEN": server.tokens["alice"]}

    def run(command: str) -> dict[str, Any]:
        shell = command.replace("localhost:8765", f"127.0.0.1:{port}")
        done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    first = run(commands[0])
    second = run(commands[1].replace("SESSION_ID", first["session_id"]))
    assert second["session_id"] == first["session_id"] and second["answer"]
    sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
    assert sent[1:] == ["Hello, what is MCP?", first["answer"], "Explain in Chinese."]


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:mcp.MCPDeprecationWarning")
async def test_subscriptions_over_http_tell_only_the_sessions_principal(server: HttpServer) -> None:
    """Both subscribe to 'watched' (each their own); only alice's turn is told, and only to alice."""
    heard: dict[str, list[object]] = {"alice": [], "bob": []}

    def handler(name: str) -> Any:
        async def on_message(message: object) -> None:
            heard[name].append(message)

        return on_message

    def updated(name: str) -> list[str]:
        return [m.params.uri for m in heard[name] if isinstance(m, ResourceUpdatedNotification)]

    async with (
        create_mcp_http_client(headers=server.auth("alice")) as alice_http,
        create_mcp_http_client(headers=server.auth("bob")) as bob_http,
        client_for(
            streamable_http_client(server.mcp_url, http_client=alice_http),
            "legacy",
            message_handler=handler("alice"),
        ) as alice,
        client_for(
            streamable_http_client(server.mcp_url, http_client=bob_http),
            "legacy",
            message_handler=handler("bob"),
        ) as bob,
    ):
        for client in (alice, bob):
            await client.list_resources()  # so each hears list_changed (the barrier below)
            await client.call_tool("chat", {"message": "start", "session_id": "watched"})
            await client.subscribe_resource("chat://sessions/watched")
        await alice.call_tool("chat", {"message": "again", "session_id": "watched"})
        with anyio.fail_after(10):
            while not updated("alice"):
                await anyio.sleep(0.01)
        # A barrier: bob's own new session brings him a list_changed after anything alice's turn sent.
        heard["bob"].clear()
        await bob.call_tool("chat", {"message": "barrier"})
        with anyio.fail_after(10):
            while not any(isinstance(m, ResourceListChangedNotification) for m in heard["bob"]):
                await anyio.sleep(0.01)
    assert updated("alice") == ["chat://sessions/watched"]
    assert updated("bob") == []


@pytest.fixture
def two_hosts(fake: FakeOllama, tmp_path: Path) -> Iterator[tuple[str, FakeOllama]]:
    """serve --http in front of a second fake (qwen3:8b, llama3:8b), listed first, and the shared one."""
    with FakeOllama(models=[QWEN3, LLAMA3]) as other:
        port = free_port()
        argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port)]
        argv += ["--db", str(tmp_path / "db"), "--preload", "off"]
        argv += ["--ollama-host", other.url, "--ollama-host", fake.url]
        quiet = subprocess.DEVNULL
        # Without a tokens file serve --http wants a token too: the operator's, from the environment.
        env = {**_child_env(tmp_path), "MCP_OLLAMA_HTTP_TOKEN": OPERATOR_TOKEN}
        process = subprocess.Popen(argv, env=env, stdout=quiet, stderr=quiet)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(url, process)
            yield url, other
        finally:
            process.terminate()
            process.communicate(timeout=15)


@pytest.mark.anyio
async def test_two_ollama_servers_over_http_route_by_model_and_fail_over(
    two_hosts: tuple[str, FakeOllama], fake: FakeOllama
) -> None:
    url, other = two_hosts
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}) as http,
        client_for(streamable_http_client(url + "/mcp", http_client=http), "legacy") as client,
    ):
        qwen = await client.call_tool("chat", {"message": "to qwen", "model": "qwen3:8b"})
        first = await client.call_tool("chat", {"message": "llama, first"})
        other.stop()  # the first server listed goes away; llama3:8b is on the shared fake too
        after = await client.call_tool("chat", {"message": "llama, after"})
    assert qwen.is_error is not True and first.is_error is not True, (qwen.content, first.content)
    assert after.is_error is not True, after.content
    assert other.chat_requests[0]["messages"][-1]["content"] == "to qwen"  # only it has qwen
    assert fake.chat_requests[-1]["messages"][-1]["content"] == "llama, after"


@pytest.mark.anyio
async def test_one_user_cannot_take_every_notification_stream(server: HttpServer) -> None:
    """bob holds the most listen streams one user may; his next is refused in a sentence, alice's opens."""
    async with (
        mcp_client(server, "auto", "bob") as bob,
        mcp_client(server, "auto", "alice") as alice,
        contextlib.AsyncExitStack() as streams,
    ):
        for _ in range(16):  # the default --max-streams-per-user
            await streams.enter_async_context(bob.listen(resources_list_changed=True))
        with pytest.raises(MCPError) as refused:
            await streams.enter_async_context(bob.listen(resources_list_changed=True))
        async with alice.listen(resources_list_changed=True) as hers:
            assert hers.honored.resources_list_changed is True
    assert refused.value.error.code == INTERNAL_ERROR
    assert "the most one user may have" in refused.value.error.message
    assert "--max-streams-per-user" in refused.value.error.message


# ---------------------------------------------------------------------------- one id, three owners


def _local_store(server: HttpServer) -> ChatStore:
    """The server's database, opened as a second process would: the ``local`` user's side (stdio,
    ``ask``), which shares the file with the team server."""
    return ChatStore.open(server.tokens_file.parent / "s.sqlite3")


def _texts(messages: list[StoredMessage]) -> list[str]:
    return [m.content for m in messages]


async def _read(client: Client, sid: str) -> str:
    read = await client.read_resource(f"chat://sessions/{sid}")
    return "".join(getattr(c, "text", "") for c in read.contents)


async def _completed(client: Client, prefix: str) -> list[str]:
    """Session-id completions for ``prefix``, by both references that take one; they must agree."""
    by_template = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri="chat://sessions/{session_id}"),
        {"name": "session_id", "value": prefix},
    )
    by_prompt = await client.complete(
        PromptReference(type="ref/prompt", name="continue_session"), {"name": "session_id", "value": prefix}
    )
    assert by_template.completion.values == by_prompt.completion.values
    return by_template.completion.values


@pytest.mark.anyio
async def test_three_owners_of_one_session_id_stay_apart_by_every_path(
    server: HttpServer, fake: FakeOllama, era: str
) -> None:
    """local (the same database's own user), alice and bob each have a session ``same-<era>``: every
    path bob or alice takes, reads, completions, clear and delete included, reaches their own only."""
    sid, local_only, alice_only = f"same-{era}", f"local-only-{era}", f"alice-only-{era}"
    with _local_store(server) as store:
        store.append_turn(sid, model="m", user="local's secret", assistant="local's answer")
        store.append_turn(local_only, model="m", user="local alone", assistant="ok")
    async with mcp_client(server, era, "alice") as alice:
        await alice.call_tool("chat", {"message": "alice's secret", "session_id": sid})
        await alice.call_tool("chat", {"message": "alice alone", "session_id": alice_only})
    async with mcp_client(server, era, "bob") as bob:
        first = await bob.call_tool("chat", {"message": "bob's words", "session_id": sid})
        assert first.structured_content is not None and first.structured_content["new_session"] is True
        sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
        assert "bob's words" in sent and not {"alice's secret", "local's secret"} & set(sent)

        text = await _read(bob, sid)
        assert "bob's words" in text and "secret" not in text
        prompt = await bob.get_prompt("continue_session", {"session_id": sid})
        assert [getattr(m.content, "text", "") for m in prompt.messages][:1] == ["bob's words"]
        listed = {r.uri for r in (await bob.list_resources()).resources}
        assert f"chat://sessions/{sid}" in listed
        assert not {f"chat://sessions/{local_only}", f"chat://sessions/{alice_only}"} & listed

        assert await _completed(bob, sid[:5]) == [sid]  # his own, once
        assert await _completed(bob, "local-only") == []
        assert await _completed(bob, "alice-only") == []
        everything = await _completed(bob, "")
        assert sid in everything and local_only not in everything and alice_only not in everything

        cleared = await bob.call_tool("clear_session", {"session_id": sid})
        assert cleared.structured_content == {"session_id": sid, "deleted": False, "cleared_messages": 2}
        deleted = await bob.call_tool("delete_session", {"session_id": sid})
        assert deleted.structured_content == {"session_id": sid, "deleted": True, "cleared_messages": 0}
        for tool in ("cancel_chat", "delete_session", "clear_session"):  # gone: his, not the others'
            _same(
                await _outcome(bob.call_tool(tool, {"session_id": sid})),
                await _outcome(bob.call_tool(tool, {"session_id": "no-such-session"})),
                sid,
            )
        remembered = await bob.call_tool("chat_result", {"session_id": sid})  # his own last answer
        assert "secret" not in " ".join(getattr(block, "text", "") for block in remembered.content)
        assert sid not in await _completed(bob, "")
    async with mcp_client(server, era, "alice") as alice:
        assert "alice's secret" in await _read(alice, sid)  # bob's clear and delete were his own
        assert await _completed(alice, sid[:5]) == [sid]
        assert await _completed(alice, "local-only") == []
        cleared = await alice.call_tool("clear_session", {"session_id": sid})
        assert cleared.structured_content is not None and cleared.structured_content["cleared_messages"] == 2
        with _local_store(server) as store:
            assert _texts(store.messages(sid)) == ["local's secret", "local's answer"]
        deleted = await alice.call_tool("delete_session", {"session_id": sid})
        assert deleted.structured_content is not None and deleted.structured_content["deleted"] is True
        assert "alice alone" in await _read(alice, alice_only)
    with _local_store(server) as store:  # local's 'same' outlived both other owners' deletes
        assert _texts(store.messages(sid)) == ["local's secret", "local's answer"]
        assert store.get_session(sid, principal="alice") is None
        assert store.session_ids("", principal="local")[:2] == [local_only, sid]
        assert store.delete_session(sid) and store.delete_session(local_only)


@pytest.mark.anyio
async def test_a_job_the_server_lost_is_found_by_its_principal_only(server: HttpServer, era: str) -> None:
    """A turn alice started when the server was killed: after the restart, chat_result tells her it
    was interrupted; bob's and local's sessions of the same id know nothing of it."""
    sid = f"crashed-{era}"
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with _local_store(server) as store:
        store.record_job(
            JobRecord(
                f"job-{era}",
                sid,
                "llama3:8b",
                "running",
                "a-killed-process",
                long_ago,
                long_ago,
                principal="alice",
            )
        )
        assert store.latest_job(sid) is None
    async with mcp_client(server, era, "alice") as alice:
        hers = await alice.call_tool("chat_result", {"session_id": sid})
    async with mcp_client(server, era, "bob") as bob:
        theirs = await _outcome(bob.call_tool("chat_result", {"session_id": sid}))
        absent = await _outcome(bob.call_tool("chat_result", {"session_id": "no-such-session"}))
    assert hers.structured_content is not None and hers.structured_content["status"] == "interrupted"
    _same(theirs, absent, sid)


# ---------------------------------------------------------------------------- tasks in both eras


@pytest.mark.anyio
async def test_a_modern_task_is_not_found_by_another_principal_with_the_same_client(
    server: HttpServer, fake: FakeOllama
) -> None:
    """2026-07-28 has no connection to tell requesters apart: alice and bob both run the SDK's
    client (the same clientInfo), so only the principal keeps bob from alice's task (her answer)."""
    fake.enqueue(SLOW)  # longer than the direct-answer window: the call becomes a task
    async with mcp_client(server, "modern", "alice", extensions=[TasksRequester()]) as alice:
        handle = await alice.session.call_tool("chat", {"message": "a task"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        own = await request(alice, "tasks/get", {"taskId": handle.task_id})
        async with mcp_client(server, "modern", "bob", extensions=[TasksRequester()]) as bob:
            results = {}
            for method in ("tasks/get", "tasks/cancel"):
                results[method] = (
                    await _outcome(request(bob, method, {"taskId": handle.task_id})),
                    await _outcome(request(bob, method, {"taskId": "0" * 32})),
                )
        still = await request(alice, "tasks/get", {"taskId": handle.task_id})
        await request(alice, "tasks/cancel", {"taskId": handle.task_id})
    assert own["taskId"] == handle.task_id and own["status"] == "working"
    for theirs, absent in results.values():
        assert theirs == absent and theirs[0] == f"error {INVALID_PARAMS}"
    assert still["status"] == "working"  # bob's cancel did not reach it


# ---------------------------------------------------------------------------- POST /chat, refused


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"message": "hi", "model": "llama3:8b"}, "Unknown field(s): model"),
        (["hi"], "must be a JSON object"),
        ({"message": 42}, "message is required and must be a string"),
        ({"message": "hi", "session_id": 7}, "session_id must be a string"),
        ({"message": "   "}, "empty"),
        ({"message": "hi", "session_id": "no/slashes"}, "session"),
    ],
)
def test_post_chat_refuses_a_bad_body_with_400_and_one_sentence(
    server: HttpServer, fake: FakeOllama, body: object, words: str
) -> None:
    answer = httpx.post(server.url + "/chat", json=body, headers=server.auth(), timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert words in error and "\n" not in error
    assert fake.chat_requests == []


def test_post_chat_refuses_a_body_over_one_mib(server: HttpServer, fake: FakeOllama) -> None:
    body = json.dumps({"message": "x" * (MAX_BODY_BYTES + 1)})  # valid JSON, under the transport's cap
    answer = httpx.post(
        server.url + "/chat",
        content=body,
        headers={**server.auth(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == f"The request body is larger than {MAX_BODY_BYTES:,} bytes."
    assert fake.chat_requests == []


def test_post_chat_hang_up_stops_the_model_and_stores_nothing(server: HttpServer, fake: FakeOllama) -> None:
    """curl's Ctrl-C: the connection closes mid-answer; Ollama's stream must close and no turn be stored."""
    fake.enqueue(SLOW)
    body = json.dumps({"session_id": "hung-up", "message": "write for ever"}).encode()
    head = (
        f"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.tokens['alice']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + body)
        assert fake.wait_for_active(timeout=30), "the chat never reached Ollama"
    assert fake.wait_for_hangup(30), "Ollama's stream stayed open after the client hung up"
    with _local_store(server) as store:
        assert store.get_session("hung-up", principal="alice") is None


# ---------------------------------------------------------------------------- allowlists, positively


@pytest.mark.parametrize("path", ["/mcp", "/chat"])
@pytest.mark.parametrize("origin", ["https://localhost", "https://127.0.0.1:8443", "http://localhost:3000"])
def test_a_page_on_this_host_behind_tls_is_allowed(
    server: HttpServer, fake: FakeOllama, path: str, origin: str
) -> None:
    body = INITIALIZE if path == "/mcp" else {"message": "from a page"}
    answer = httpx.post(
        server.url + path, json=body, headers={**MCP_HEADERS, **server.auth(), "Origin": origin}, timeout=30
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/mcp", "/chat"])
async def test_the_bind_address_is_an_allowed_host(settings: Settings, tmp_path: Path, path: str) -> None:
    """``--bind 192.168.1.5``: clients on the LAN use that address in the URL, so in the Host header.
    (In process: this machine may have no such address to bind.)"""
    tokens_file = tmp_path / "tokens"
    add_token(tokens_file, "alice")  # a team server; no request here presents a valid token
    lan = dataclasses.replace(settings, http_bind="192.168.1.5", tokens_file=str(tokens_file))
    app = build_http_app(lan)
    body = INITIALIZE if path == "/mcp" else {"message": "hi"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=30) as http:
        answers = {}
        for host in ("192.168.1.5:8765", "192.168.1.5", "localhost:8765", "192.168.1.6:8765"):
            answers[host] = await http.post(
                f"http://{host}{path}", json=body, headers={**MCP_HEADERS, "Authorization": "Bearer wrong"}
            )
        from_page = await http.post(  # a page served from the LAN address itself
            f"http://192.168.1.5:8765{path}",
            json=body,
            headers={**MCP_HEADERS, "Origin": "http://192.168.1.5:8765"},
        )
    assert {host: a.status_code for host, a in answers.items()} == {
        "192.168.1.5:8765": 401,  # past the Host check, stopped for the token
        "192.168.1.5": 401,
        "localhost:8765": 401,
        "192.168.1.6:8765": 421,
    }
    assert from_page.status_code == 401  # past the Host and Origin checks


@pytest.mark.anyio
async def test_a_token_holder_never_sees_where_ollama_runs(server: HttpServer, fake: FakeOllama) -> None:
    address = fake.url.split("://", 1)[1]
    fake.enqueue(Behavior(status=500, error="llama runner process has terminated"))
    async with mcp_client(server, "legacy", "bob") as bob:
        failed = await bob.call_tool("chat", {"message": "hi"})
        listed = await bob.call_tool("list_models", {})
    told = failed.content[0].text  # type: ignore[union-attr]
    assert failed.is_error and "llama runner process has terminated" in told
    assert address not in told and "127.0.0.1" not in told
    assert address not in json.dumps(listed.model_dump(mode="json"))
