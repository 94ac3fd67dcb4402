"""``pull_model``, ``pull_result`` and ``cancel_pull``: the fake's faithful ``/api/pull``, the client's
progress lines, the tool with live progress in both eras, the answer deadline, cancelling, several
servers, and pull as an MCP task (in memory, and with the official tasks requester over stdio)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp_types import CallToolResult, ProgressNotification, ResourceTemplateReference

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend_errors import PullFailed
from mcp_ollama.config import Settings
from mcp_ollama.config.hosts import parse_ollama_host
from mcp_ollama.server import tasks_modern

from .conftest import connect, eventually
from .fake_ollama import LLAMA3, QWEN3, FakeOllama
from .fake_ollama.pulling import UNKNOWN_MANIFEST, PullBehavior
from .test_tasks import (
    TaskHandle,
    TasksRequester,
    legacy,
    modern,
    poll,
    request,
    requester,
    run_requester,
    task_call,
)

pytestmark = pytest.mark.anyio
__all__ = ["requester"]  # the official requester's fixture, shared with test_tasks

SLOW_PULL = PullBehavior(steps=400, step_delay=0.05)
"""A pull that outlasts any test: at least 20 s."""


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# ---------------------------------------------------------------------------- the fake and the client


def test_the_fake_streams_a_pull_as_ollama_writes_it(fake: FakeOllama) -> None:
    with httpx.stream("POST", fake.url + "/api/pull", json={"model": "qwen3:8b"}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in answer.iter_lines() if line]
    assert lines[0] == {"status": "pulling manifest"}
    first = lines[1]
    assert set(first) == {"status", "digest", "total"}, "Go omits a zero 'completed'"
    assert first["status"] == f"pulling {first['digest'][7:19]}"
    assert [line["status"] for line in lines[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert "qwen3:8b" in [m.name for m in fake.models]


def test_the_fake_answers_an_unknown_name_with_an_error_line(fake: FakeOllama) -> None:
    with httpx.stream("POST", fake.url + "/api/pull", json={"model": "nosuch:1b"}) as answer:
        lines = [json.loads(line) for line in answer.iter_lines() if line]
        assert answer.status_code == 200, "the error comes after the stream began"
    assert lines == [{"status": "pulling manifest"}, {"error": UNKNOWN_MANIFEST}]
    whole = httpx.post(fake.url + "/api/pull", json={"model": "nosuch:1b", "stream": False})
    assert whole.status_code == 500 and whole.json() == {"error": UNKNOWN_MANIFEST}


async def test_the_client_reads_progress_lines_until_success(fake: FakeOllama) -> None:
    async with OllamaClient(fake.url) as client, client.pull_stream("llava:7b") as lines:
        seen = [line async for line in lines]
    assert seen[0].status == "pulling manifest" and seen[-1].status == "success"
    big = [line for line in seen if line.total and line.total > 1_000_000]
    done = [line.completed or 0 for line in big]
    assert big[0].completed is None and done == sorted(done)
    assert big[-1].completed == big[-1].total


@pytest.mark.parametrize(
    ("behavior", "detail"),
    [
        (PullBehavior(cut_after=3), "the connection closed before the pull was complete"),
        (PullBehavior(error_after=4, error="max retries exceeded"), "max retries exceeded"),
    ],
)
async def test_a_cut_or_failed_pull_is_one_sentence(
    fake: FakeOllama, behavior: PullBehavior, detail: str
) -> None:
    fake.pull_behavior = behavior

    async def read_all() -> None:
        async with OllamaClient(fake.url) as client, client.pull_stream("llava:7b") as lines:
            async for _ in lines:
                pass

    with pytest.raises(PullFailed) as caught:
        await read_all()
    assert caught.value.detail == detail
    assert str(caught.value).startswith(f"Ollama at {fake.url} could not pull 'llava:7b': {detail}.")
    assert "pull again" in str(caught.value)


# ---------------------------------------------------------------------------- the tool


async def test_pull_model_reports_growing_progress_with_totals_then_lists_the_model(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.pull_behavior = PullBehavior(steps=8, step_delay=0.02)
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    template = ResourceTemplateReference(uri="ollama://models/{model}")
    async with connect(settings, era) as client:
        before = await client.complete(template, {"name": "model", "value": "qwen"})
        result = await client.call_tool("pull_model", {"model": "qwen3:8b"}, progress_callback=on_progress)
        listed = await client.call_tool("list_models", {})
        after = await client.complete(template, {"name": "model", "value": "qwen"})
    assert result.is_error is not True, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "complete"
    assert result.structured_content["total_bytes"] == QWEN3.size
    assert text(result) == f"Pulled qwen3:8b (5.2 GB) onto {fake.url}; it is ready to use as `model`."
    values = [value for value, _, _ in progress]
    assert len(values) >= 4 and values == sorted(set(values)), "strictly increasing"
    with_totals = [(value, total) for value, total, _ in progress if total is not None]
    assert len(with_totals) >= 3 and all(value <= total for value, total in with_totals)
    assert any(message and message.startswith("qwen3:8b: pulling 5.2 GB: ") for _, _, message in progress)
    assert before.completion.values == []
    assert after.completion.values == ["qwen3:8b"], "completions name the new model at once"
    assert listed.structured_content is not None
    assert "qwen3:8b" in [m["name"] for m in listed.structured_content["models"]]


async def test_an_unknown_name_is_one_sentence_with_the_closest_local_names(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models[:] = [LLAMA3, dataclasses.replace(LLAMA3, name="llama3.1:8b")]
    async with connect(settings, era) as client:
        result = await client.call_tool("pull_model", {"model": "llama3:80b"})
    assert result.is_error is True
    assert text(result) == (
        f"Ollama at {fake.url} found no model 'llama3:80b' in the registry ({UNKNOWN_MANIFEST}); check "
        "the name and tag (closest pulled here: llama3:8b, llama3.1:8b; https://ollama.com/library "
        "lists the others)."
    )


async def test_a_bad_name_or_server_is_refused_before_ollama_is_asked(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "legacy") as client:
        spaced = await client.call_tool("pull_model", {"model": "llama 3"})
        nowhere = await client.call_tool("pull_model", {"model": "qwen3:8b", "server": "gpu9:11434"})
    assert spaced.is_error and "no spaces" in text(spaced)
    assert nowhere.is_error and text(nowhere).startswith(
        "No Ollama server 'gpu9:11434' here; the servers are"
    )
    assert not [r for r in fake.requests if r.path == "/api/pull"]


async def test_a_pull_longer_than_the_answer_deadline_is_collected_later(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.pull_behavior = PullBehavior(steps=30, step_delay=0.05)
    quick = dataclasses.replace(settings, answer_deadline=0.2)
    async with connect(quick, era) as client:
        first = await client.call_tool("pull_model", {"model": "gemma3:4b"})
        assert first.structured_content is not None
        assert first.structured_content["status"] == "pulling", text(first)
        pull_id = first.structured_content["pull_id"]
        assert f"Call `pull_result` with pull_id {pull_id!r}" in text(first)
        statuses = []
        with anyio.fail_after(30):
            while not statuses or statuses[-1] == "pulling":
                later = await client.call_tool("pull_result", {"pull_id": pull_id})
                assert later.structured_content is not None
                statuses.append(later.structured_content["status"])
    assert statuses[-1] == "complete"
    assert later.structured_content["completed_bytes"] == later.structured_content["total_bytes"]
    assert fake.pull_hangups == 0, "the pull went on while nobody waited"


async def test_cancelling_the_request_stops_the_download(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.pull_behavior = SLOW_PULL
    seen: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with connect(settings, era) as client, anyio.create_task_group() as tg:

        async def call() -> None:
            await client.call_tool("pull_model", {"model": "gemma3:4b"}, progress_callback=on_progress)

        tg.start_soon(call)
        assert await eventually(lambda: len(seen) >= 3, 10)
        tg.cancel_scope.cancel()
    assert await anyio.to_thread.run_sync(fake.wait_for_pull_hangup, 10.0), "Ollama must see the disconnect"


async def test_cancel_pull_stops_the_download(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.pull_behavior = SLOW_PULL
    quick = dataclasses.replace(settings, answer_deadline=0.2)
    async with connect(quick, era) as client:
        first = await client.call_tool("pull_model", {"model": "gemma3:4b"})
        assert first.structured_content is not None
        pull_id = first.structured_content["pull_id"]
        stopped = await client.call_tool("cancel_pull", {"pull_id": pull_id})
        again = await client.call_tool("cancel_pull", {"pull_id": pull_id})
        after = await client.call_tool("pull_result", {"pull_id": pull_id})
        unknown = await client.call_tool("pull_result", {"pull_id": "nope"})
    assert await anyio.to_thread.run_sync(fake.wait_for_pull_hangup, 10.0)
    assert stopped.structured_content == {"pull_id": pull_id, "model": "gemma3:4b", "cancelled": True}
    assert again.structured_content is not None and again.structured_content["cancelled"] is False
    assert after.structured_content is not None and after.structured_content["status"] == "cancelled"
    assert "what was downloaded is kept" in text(after)
    assert unknown.is_error and text(unknown).startswith("No pull with id 'nope' here")
    assert "gemma3:4b" not in [m.name for m in fake.models]


async def test_a_cut_stream_fails_the_pull_in_one_sentence(settings: Settings, fake: FakeOllama) -> None:
    fake.pull_behavior = PullBehavior(cut_after=4)
    async with connect(settings, "modern") as client:
        result = await client.call_tool("pull_model", {"model": "llava:7b"})
    assert result.is_error is True
    assert text(result) == (
        f"Ollama at {fake.url} could not pull 'llava:7b': the connection closed before the pull was "
        "complete. What was downloaded is kept; pull again to resume."
    )


# ---------------------------------------------------------------------------- several servers


@pytest.fixture
def other() -> Iterator[FakeOllama]:
    with FakeOllama(models=[LLAMA3]) as second:
        yield second


async def test_a_pull_goes_to_every_server_or_the_one_named(
    settings: Settings, fake: FakeOllama, other: FakeOllama, era: str
) -> None:
    both = dataclasses.replace(settings, other_ollama_hosts=(parse_ollama_host(other.url),))
    async with connect(both, era) as client:
        everywhere = await client.call_tool("pull_model", {"model": "qwen3:8b"})
        one = await client.call_tool(
            "pull_model", {"model": "llava:7b", "server": other.url.removeprefix("http://")}
        )
    assert everywhere.structured_content is not None and one.structured_content is not None
    assert [s["server"] for s in everywhere.structured_content["servers"]] == [fake.url, other.url]
    assert all(s["status"] == "done" for s in everywhere.structured_content["servers"])
    assert [s["server"] for s in one.structured_content["servers"]] == [other.url]
    assert "llava:7b" in [m.name for m in other.models] and "llava:7b" not in [m.name for m in fake.models]


async def test_a_pull_failing_on_one_server_says_how_each_fared(
    settings: Settings, fake: FakeOllama, other: FakeOllama
) -> None:
    other.pull_behavior = PullBehavior(error_after=3, error="disk full")
    both = dataclasses.replace(settings, other_ollama_hosts=(parse_ollama_host(other.url),))
    async with connect(both, "legacy") as client:
        result = await client.call_tool("pull_model", {"model": "qwen3:8b"})
    assert result.is_error is True
    assert text(result).startswith(f"Ollama at {other.url} could not pull 'qwen3:8b': disk full.")
    assert f"(servers: {fake.url}: done; {other.url}: failed)" in text(result)
    assert "qwen3:8b" in [m.name for m in fake.models], "the other server's pull went on"


# ---------------------------------------------------------------------------- as an MCP task


async def test_legacy_pull_task_reports_progress_and_gives_the_plain_result(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.pull_behavior = PullBehavior(steps=10, step_delay=0.02)
    progress: list[float] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, ProgressNotification) and message.params.progress_token == "p1":
            progress.append(message.params.progress)

    async with legacy(settings, message_handler=on_message) as client:
        created = await task_call(
            client, "pull_model", {"model": "qwen3:8b"}, {"ttl": 60_000}, progressToken="p1"
        )
        task_id = created["task"]["taskId"]
        result = await request(client, "tasks/result", {"taskId": task_id})
        got = await request(client, "tasks/get", {"taskId": task_id})
    assert created["task"]["status"] == "working"
    assert got["status"] == "completed"
    assert result["structuredContent"]["status"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    assert len(progress) >= 2 and progress == sorted(set(progress)), "progress flows on the call's token"


async def test_legacy_pull_task_cancel_stops_the_download(settings: Settings, fake: FakeOllama) -> None:
    fake.pull_behavior = SLOW_PULL
    async with legacy(settings) as client:
        created = await task_call(client, "pull_model", {"model": "gemma3:4b"})
        task_id = created["task"]["taskId"]
        with anyio.fail_after(10):  # bytes are coming: there is a download to stop
            while " %" not in (await request(client, "tasks/get", {"taskId": task_id})).get(
                "statusMessage", ""
            ):
                await anyio.sleep(0.02)
        cancelled = await request(client, "tasks/cancel", {"taskId": task_id})
        result = await request(client, "tasks/result", {"taskId": task_id})
    assert cancelled["status"] == "cancelled"
    assert await anyio.to_thread.run_sync(fake.wait_for_pull_hangup, 10.0)
    assert result["structuredContent"]["status"] == "cancelled"


async def test_modern_pull_task_is_polled_to_its_result(
    settings: Settings, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_modern, "DIRECT_ANSWER_SECONDS", 0)
    fake.pull_behavior = PullBehavior(steps=10, step_delay=0.02)
    async with modern(settings, TasksRequester()) as client:
        handle = await client.session.call_tool("pull_model", {"model": "qwen3:8b"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        done = await poll(client, handle.task_id, {"completed", "failed", "cancelled"})
    assert done["status"] == "completed" and done["result"]["isError"] is False
    assert done["result"]["structuredContent"]["status"] == "complete"


async def test_modern_pull_task_cancel_stops_the_download(
    settings: Settings, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_modern, "DIRECT_ANSWER_SECONDS", 0)
    fake.pull_behavior = SLOW_PULL
    async with modern(settings, TasksRequester()) as client:
        handle = await client.session.call_tool("pull_model", {"model": "gemma3:4b"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        with anyio.fail_after(10):  # bytes are coming: there is a download to stop
            while " %" not in (await request(client, "tasks/get", {"taskId": handle.task_id})).get(
                "statusMessage", ""
            ):
                await anyio.sleep(0.02)
        await request(client, "tasks/cancel", {"taskId": handle.task_id})
        assert await anyio.to_thread.run_sync(fake.wait_for_pull_hangup, 10.0)
        got = await request(client, "tasks/get", {"taskId": handle.task_id})
    assert got["status"] == "cancelled"


@pytest.mark.clients
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_official_requester_completes_a_pull_task(
    requester: str, settings: Settings, fake: FakeOllama, era: str
) -> None:
    # 40 lines 50 ms apart: about 2 s, past the 2026-07-28 direct-answer wait, so a task.
    fake.pull_behavior = PullBehavior(steps=40, step_delay=0.05)
    (out,) = run_requester(requester, settings, era, "complete", tool="pull_model")
    assert out["kind"] == "task" and out["status"] == "completed"
    assert out["result"]["structuredContent"]["status"] == "complete"
    assert out["result"]["content"][0]["text"].startswith("Pulled gemma3:4b")
    if era == "legacy":
        assert out["statuses"][-1] == "completed"


@pytest.mark.clients
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_official_requester_cancels_a_pull_task(
    requester: str, settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.pull_behavior = SLOW_PULL
    (out,) = run_requester(requester, settings, era, "cancel", tool="pull_model")
    assert out == {"kind": "task", "acknowledged": True, "snapshot": "cancelled"}
    assert fake.wait_for_pull_hangup(10.0), "Ollama must see the download stopped"
