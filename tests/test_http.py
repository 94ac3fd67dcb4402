"""``serve --http``: the real server in a subprocess on loopback, the SDK's streamable HTTP client in
both eras, bearer tokens, DNS-rebinding protection, ``/healthz`` and the demo's ``POST /chat``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
    INVALID_PARAMS,
    ResourceListChangedNotification,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
)

from mcp_ollama.cli import main
from mcp_ollama.server.principal import principal
from mcp_ollama.transports.auth import add_token, hash_token
from mcp_ollama.transports.exposure import check_exposure

from .conftest import client_for, free_port
from .fake_ollama import LLAMA3, QWEN3, Behavior, FakeOllama
from .test_tasks import request, task_call

READY_LIMIT = 60.0
"""Generous: a loaded CI machine may take long to import the SDK; the loop returns as soon as it is up."""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


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
async def mcp_client(server: HttpServer, era: str, name: str = "alice") -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, in ``era``, with ``name``'s token."""
    async with (
        create_mcp_http_client(headers=server.auth(name)) as http,
        client_for(streamable_http_client(server.mcp_url, http_client=http), era) as client,
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


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "::"])
def test_binding_beyond_loopback_without_tokens_is_refused(
    bind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--http", "--bind", bind, "--port", str(free_port())]) == 2
    assert "--tokens-file" in capsys.readouterr().err


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
        process = subprocess.Popen(argv, env=_child_env(tmp_path), stdout=quiet, stderr=quiet)
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
        create_mcp_http_client() as http,
        client_for(streamable_http_client(url + "/mcp", http_client=http), "legacy") as client,
    ):
        qwen = await client.call_tool("chat", {"message": "to qwen", "model": "qwen3:8b"})
        first = await client.call_tool("chat", {"message": "llama, first"})
        other.stop()  # the first server listed goes away; llama3:8b is on the other one too
        after = await client.call_tool("chat", {"message": "llama, after"})
    assert qwen.is_error is not True and first.is_error is not True, (qwen.content, first.content)
    assert after.is_error is not True, after.content
    assert [r["messages"][-1]["content"] for r in other.chat_requests] == ["to qwen", "llama, first"]
    assert [r["messages"][-1]["content"] for r in fake.chat_requests] == ["llama, after"]
