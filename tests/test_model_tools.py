"""``running_models``, ``unload_model``, ``keep_alive`` on ``chat``, the model resources, the CLI's
``pull``, ``ps`` and ``unload``, and who may pull and unload on the team server (two tokens over
HTTP: an admin and a user)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_types import CallToolResult, TextResourceContents

from mcp_ollama.cli import main
from mcp_ollama.config import Settings
from mcp_ollama.config.hosts import parse_ollama_host
from mcp_ollama.transports.auth import add_token, read_tokens

from .conftest import connect, free_port
from .fake_ollama import LLAMA3, QWEN3, FakeOllama
from .fake_ollama.pulling import NOMIC_EMBED, PullBehavior
from .test_http import HttpServer, _child_env, _wait_until_ready, mcp_client
from .test_tasks import request, task_call

pytestmark = pytest.mark.anyio


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# ---------------------------------------------------------------------------- memory


async def test_running_models_says_size_gpu_share_context_and_expiry(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        empty = await client.call_tool("running_models", {})
        await client.call_tool("chat", {"message": "load it"})
        result = await client.call_tool("running_models", {})
    assert text(empty) == "No model is loaded now."
    assert result.structured_content is not None
    [loaded] = result.structured_content["models"]
    assert loaded["name"] == "llama3:8b" and loaded["server"] == fake.url
    assert loaded["size_bytes"] == loaded["vram_bytes"] == LLAMA3.size and loaded["gpu_share"] == 1.0
    assert loaded["context_length"] == 8192 and loaded["expires_at"]
    assert re.fullmatch(r"- llama3:8b: 4\.7 GB, 100 % GPU, context 8,192, unloads in [34] min", text(result))


async def test_running_models_shows_each_server_and_one_that_is_down(
    settings: Settings, fake: FakeOllama
) -> None:
    with FakeOllama(models=[QWEN3]) as other:
        down = f"http://127.0.0.1:{free_port()}"
        three = dataclasses.replace(
            settings, other_ollama_hosts=(parse_ollama_host(other.url), parse_ollama_host(down))
        )
        async with connect(three, "modern") as client:
            await client.call_tool("chat", {"message": "a", "model": "qwen3:8b"})
            await client.call_tool("chat", {"message": "b", "model": "llama3:8b"})
            result = await client.call_tool("running_models", {})
    assert result.structured_content is not None
    where = {m["name"]: m["server"] for m in result.structured_content["models"]}
    assert where == {"llama3:8b": fake.url, "qwen3:8b": other.url}
    assert list(result.structured_content["unreachable"]) == [down]
    assert f"(on {other.url})" in text(result) and f"Ollama at {down} did not answer" in text(result)


async def test_unload_model_frees_the_model_and_says_when_it_was_not_loaded(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        await client.call_tool("chat", {"message": "load it"})
        assert fake.loaded_models == ["llama3:8b"]
        unloaded = await client.call_tool("unload_model", {"model": "llama3:8b"})
        again = await client.call_tool("unload_model", {"model": "llama3:8b"})
    assert fake.loaded_models == []
    assert fake.chat_requests[-1] == {"model": "llama3:8b", "messages": [], "stream": False, "keep_alive": 0}
    assert unloaded.structured_content == {"model": "llama3:8b", "unloaded_from": [fake.url]}
    assert text(unloaded) == f"Unloaded llama3:8b from {fake.url}; its memory is free."
    assert text(again) == "llama3:8b is not loaded, so there is nothing to unload. Nothing is loaded."


@pytest.mark.parametrize(("given", "sent"), [("-1", -1), ("10m", "10m"), (600, 600), ("0", 0)])
async def test_chat_keep_alive_reaches_ollama(
    settings: Settings, fake: FakeOllama, given: object, sent: object
) -> None:
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "stay warm", "keep_alive": given})
    assert result.is_error is not True, text(result)
    assert fake.chat_requests[-1]["keep_alive"] == sent


async def test_chat_keep_alive_forever_shows_as_kept_loaded_and_nonsense_is_refused(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "modern") as client:
        await client.call_tool("chat", {"message": "forever", "keep_alive": -1})
        running = await client.call_tool("running_models", {})
        bad = await client.call_tool("chat", {"message": "x", "keep_alive": "soon"})
        await client.call_tool("chat", {"message": "y"})
    assert text(running).endswith("kept loaded")
    assert bad.is_error is True
    assert text(bad).startswith("keep_alive 'soon' is not a duration. How long Ollama keeps the model loaded")
    assert "keep_alive" not in fake.chat_requests[-1], "without the argument, the server's setting (none)"


async def test_the_model_resource_says_where_it_is_loaded_and_running_lists_everything(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        cold = await client.read_resource("ollama://models/llama3:8b")
        await client.call_tool("chat", {"message": "load it"})
        warm = await client.read_resource("ollama://models/llama3:8b")
        running = await client.read_resource("ollama://running")
    docs = []
    for read in (cold, warm, running):
        content = read.contents[0]
        assert isinstance(content, TextResourceContents) and content.mime_type == "application/json"
        docs.append(json.loads(content.text))
    assert docs[0]["loaded"] == []
    assert [entry["server"] for entry in docs[1]["loaded"]] == [fake.url]
    assert [m["name"] for m in docs[2]["models"]] == ["llama3:8b"] and docs[2]["unreachable"] == {}


async def test_the_tools_are_listed_with_what_they_touch(settings: Settings) -> None:
    async with connect(settings, "legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("pull_model", "pull_result", "cancel_pull", "running_models", "unload_model", "embed"):
        assert tools[name].annotations is not None and tools[name].output_schema is not None
    assert tools["pull_model"].annotations.open_world_hint is True  # type: ignore[union-attr]
    assert tools["running_models"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["cancel_pull"].annotations.destructive_hint is True  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- the commands


def test_the_pull_command_prints_a_line_per_step_off_a_terminal(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "qwen3:8b", "--ollama-host", fake.url]) == 0
    out, err = capsys.readouterr()
    assert out == f"pulled qwen3:8b (5.2 GB) onto {fake.url}\n"
    steps = err.splitlines()
    for step in ("qwen3:8b: pulling manifest", "qwen3:8b: pulling 5.2 GB", "qwen3:8b: verifying"):
        assert steps.count(step) == 1, err
    assert "%" not in err, "no percentages off a terminal: one line per step"
    assert main(["pull", "qwen9:1b", "--ollama-host", fake.url]) == 1
    assert "found no model 'qwen9:1b' in the registry" in capsys.readouterr().err


def test_ctrl_c_during_a_pull_stops_the_download(fake: FakeOllama, tmp_path: Path) -> None:
    fake.pull_behavior = PullBehavior(steps=400, step_delay=0.05)
    env = {**_child_env(tmp_path), "OLLAMA_HOST": fake.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_ollama", "pull", "gemma3:4b"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:  # the download has begun
        if "GB" in line:
            break
    process.send_signal(2)  # SIGINT, as Ctrl-C sends
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "stopped; what was downloaded is kept" in err
    assert fake.wait_for_pull_hangup(10.0), "Ollama must see the download stopped"


def test_ps_and_unload_commands(fake: FakeOllama, capsys: pytest.CaptureFixture[str]) -> None:
    host = ["--ollama-host", fake.url]
    assert main(["ps", *host]) == 0
    assert capsys.readouterr().err == "mcp-ollama: no model is loaded\n"
    assert main(["ask", "load it", *host, "--db", ":memory:"]) == 0
    capsys.readouterr()
    assert main(["ps", *host]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert row.split()[:5] == ["llama3:8b", "4.7", "GB", "100%", "GPU"]
    assert main(["unload", "llama3:8b", *host]) == 0
    assert capsys.readouterr().out == f"unloaded llama3:8b from {fake.url}\n"
    assert fake.loaded_models == []


def test_tokens_add_admin_marks_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens"
    assert main(["tokens", "add", "carol", "--admin", "--tokens-file", str(path)]) == 0
    assert main(["tokens", "add", "dave", "--tokens-file", str(path)]) == 0
    capsys.readouterr()
    assert [(entry.name, entry.admin) for entry in read_tokens(path)] == [("carol", True), ("dave", False)]
    assert path.read_text().splitlines()[0].endswith(" admin")


# ---------------------------------------------------------------------------- roles over HTTP


@pytest.fixture(scope="module")
def team(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """``serve --http`` with two tokens: alice (admin) and bob (a user)."""
    root = tmp_path_factory.mktemp("team")
    tokens_file = root / "tokens"
    tokens = {"alice": add_token(tokens_file, "alice", admin=True), "bob": add_token(tokens_file, "bob")}
    port = free_port()
    argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port)]
    argv += ["--tokens-file", str(tokens_file), "--db", str(root / "s.sqlite3")]
    argv += ["--ollama-host", _fake_server.url, "--preload", "off"]
    process = subprocess.Popen(argv, env=_child_env(root), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        yield HttpServer(url, tokens_file, tokens, process)
    finally:
        process.terminate()
        process.communicate(timeout=15)


async def test_only_an_admin_may_pull_or_unload_and_everyone_may_list_and_embed(
    team: HttpServer, fake: FakeOllama, era: str
) -> None:
    fake.models[:] = [LLAMA3, NOMIC_EMBED]
    async with mcp_client(team, era, "bob") as bob:
        refused = await bob.call_tool("pull_model", {"model": "qwen3:8b"})
        unload = await bob.call_tool("unload_model", {"model": "llama3:8b"})
        listed = await bob.call_tool("running_models", {})
        vectors = await bob.call_tool("embed", {"input": ["a", "b"]})
    assert refused.is_error is True
    assert text(refused) == (
        "Only an admin may pull models on this server and the token 'bob' is not one: ask the operator to "
        "do it, or to give you an admin token (mcp-ollama tokens add NAME --admin)."
    )
    assert unload.is_error is True and text(unload).startswith("Only an admin may unload models")
    assert listed.is_error is not True and vectors.is_error is not True
    assert not [r for r in fake.requests if r.path == "/api/pull"], "nothing reached Ollama"
    async with mcp_client(team, era, "alice") as alice:
        pulled = await alice.call_tool("pull_model", {"model": "qwen3:8b"})
    assert pulled.is_error is not True, text(pulled)
    assert "qwen3:8b" in [m.name for m in fake.models]


async def test_a_users_pull_task_fails_with_the_refusal(team: HttpServer, fake: FakeOllama) -> None:
    async with mcp_client(team, "legacy", "bob") as bob:
        created = await task_call(bob, "pull_model", {"model": "qwen3:8b"})
        result = await request(bob, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("Only an admin may pull models")
    assert not [r for r in fake.requests if r.path == "/api/pull"]
