"""``chat`` as an MCP task: 2025-11-25 core tasks and the 2026-07-28 tasks extension.

In memory through the SDK's client, then over stdio with the official requester (npm
``@modelcontextprotocol/ext-tasks`` on ``@modelcontextprotocol/client``, in ``.ci/node`` like
the Inspector; installed on demand with npm, skipped without npm or node).

The SDK's client has no tasks API: its ``tools/call`` validates every answer as a
``CallToolResult`` in the handshake era, so task-augmented calls go through the session's
dispatcher; in the 2026-07-28 era a ``ResultClaim`` (public) receives the task handle. It also
drops ``notifications/tasks/status`` (not in its 2025-11-25 tables), so a client extension's
``NotificationBinding`` observes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client, MCPError
from mcp.client.extension import ClaimContext, ClientExtension, NotificationBinding, ResultClaim, advertise
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    Implementation,
    ProgressNotification,
    Request,
    Result,
    TaskStatusNotificationParams,
)
from pydantic import ConfigDict, TypeAdapter

from mcp_ollama.config import Settings
from mcp_ollama.server import build_server, task_terms, taskbook, tasks_legacy, tasks_modern
from mcp_ollama.store import ChatStore

from .conftest import eventually
from .fake_ollama import Behavior, FakeOllama

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".ci" / "node"
REQUESTER = Path(__file__).resolve().parent / "tasks_client" / "requester.mjs"
REQUESTER_PACKAGES = {"@modelcontextprotocol/client": "2.4.0", "@modelcontextprotocol/ext-tasks": "0.2.2"}
EXT = "io.modelcontextprotocol/tasks"
SLOW = Behavior(token_count=2000, token_delay=0.05)
"""A stream that outlasts any test: at least 100 s."""

JSON = TypeAdapter(dict[str, Any])


class Raw(Request[dict[str, Any], str]):
    """Any request, params as given."""


# ---------------------------------------------------------------------------- in-memory helpers


class StatusObserver(ClientExtension):
    """Collects ``notifications/tasks/status``, which the SDK's client otherwise drops."""

    identifier = "test/task-status"

    def __init__(self) -> None:
        self.seen: list[TaskStatusNotificationParams] = []

    def notifications(self) -> list[NotificationBinding[Any]]:
        async def seen(params: TaskStatusNotificationParams) -> None:
            self.seen.append(params)

        return [
            NotificationBinding(
                method="notifications/tasks/status", params_type=TaskStatusNotificationParams, handler=seen
            )
        ]

    def statuses(self, task_id: str) -> list[str]:
        return [p.status for p in self.seen if p.task_id == task_id]


class TaskHandle(Result):
    """A 2026-07-28 ``CreateTaskResult``."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"]
    task_id: str
    status: str
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class TasksRequester(ClientExtension):
    """Declares the tasks extension and takes task handles as they come (``allow_claimed``)."""

    identifier = EXT

    def claims(self) -> list[ResultClaim[Any]]:
        async def never(handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
            raise AssertionError("tests receive task handles with allow_claimed=True")

        return [ResultClaim(result_type="task", model=TaskHandle, resolve=never)]


async def request(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return await client.session.send_request(Raw(method=method, params=params), JSON)


async def task_call(
    client: Client, name: str, arguments: dict[str, Any], task: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    """A 2025-11-25 task-augmented ``tools/call``, past the client's ``CallToolResult`` check."""
    params: dict[str, Any] = {"name": name, "arguments": arguments, "task": task or {}}
    if meta:
        params["_meta"] = meta
    dispatcher = client.session._dispatcher
    result: dict[str, Any] = await dispatcher.send_raw_request("tools/call", params, {})
    return result


async def expect_error(code: int, client: Client, method: str, params: dict[str, Any]) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await request(client, method, params)
    assert caught.value.code == code, caught.value
    return caught.value


def legacy(settings: Settings, **kwargs: Any) -> Client:
    return Client(build_server(settings), mode="legacy", **kwargs)


def modern(settings: Settings, *extensions: ClientExtension, name: str = "test-client") -> Client:
    info = Implementation(name=name, version="1.0")
    return Client(build_server(settings), mode="auto", extensions=list(extensions), client_info=info)


async def wait_active(fake: FakeOllama) -> None:
    assert await anyio.to_thread.run_sync(fake.wait_for_active), "the task never reached Ollama"


async def hung_up(fake: FakeOllama) -> bool:
    return await anyio.to_thread.run_sync(fake.wait_for_hangup)


# ---------------------------------------------------------------------------- 2025-11-25 in memory

pytestmark = pytest.mark.anyio


async def test_capabilities_and_task_support_are_advertised_per_era(settings: Settings) -> None:
    async with legacy(settings) as client:
        caps = client.server_capabilities.tasks
        assert caps is not None and caps.list is not None and caps.cancel is not None
        assert caps.requests is not None and caps.requests.tools is not None
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["chat"].execution is not None and tools["chat"].execution.task_support == "optional"
    assert all(tool.execution is None for name, tool in tools.items() if name not in ("chat", "pull_model"))
    async with modern(settings) as client:
        assert (client.server_capabilities.extensions or {}).get(EXT) == {}
        assert all(tool.execution is None for tool in (await client.list_tools()).tools)


async def test_legacy_task_completes_with_progress_notifications_and_the_plain_result(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.enqueue(Behavior(token_count=30, token_delay=0.02))
    observer, progress = StatusObserver(), []

    async def on_message(message: Any) -> None:
        if isinstance(message, ProgressNotification):
            progress.append(message.params)

    async with legacy(settings, extensions=[observer], message_handler=on_message) as client:
        created = await task_call(client, "chat", {"message": "count"}, progressToken="p1")
        task = created["task"]
        assert task["status"] == "working"
        assert task["ttl"] == task_terms.DEFAULT_TTL_MS and "createdAt" in task and "lastUpdatedAt" in task
        result = await request(client, "tasks/result", {"taskId": task["taskId"]})
        assert await eventually(lambda: "completed" in observer.statuses(task["taskId"]))
        got = await request(client, "tasks/get", {"taskId": task["taskId"]})
        plain = await client.call_tool("chat", {"message": "plain"})
    assert result["_meta"][tasks_legacy.RELATED_TASK] == {"taskId": task["taskId"]}
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": result["structuredContent"]["answer"]}]
    assert result["structuredContent"]["status"] == "complete"
    assert set(result["structuredContent"]) == set(plain.structured_content or {})
    assert got["status"] == "completed" and got["ttl"] == task_terms.DEFAULT_TTL_MS
    statuses = observer.statuses(task["taskId"])
    assert statuses[-1] == "completed" and statuses.count("completed") == 1
    assert set(statuses) <= {"working", "completed"}
    mine = [p for p in progress if p.progress_token == "p1"]
    assert mine, "progress must keep flowing on the call's token"
    values = [p.progress for p in mine]
    assert values == sorted(set(values)) and values[-1] <= 30


async def test_legacy_cancel_stops_the_model_and_the_task_stays_cancelled(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.enqueue(SLOW)
    observer = StatusObserver()
    async with legacy(settings, extensions=[observer]) as client:
        task_id = (await task_call(client, "chat", {"message": "long"}))["task"]["taskId"]
        await wait_active(fake)
        cancelled = await request(client, "tasks/cancel", {"taskId": task_id})
        assert await hung_up(fake), "Ollama must see the stream closed"
        got = await request(client, "tasks/get", {"taskId": task_id})
        again = await expect_error(INVALID_PARAMS, client, "tasks/cancel", {"taskId": task_id})
        result = await request(client, "tasks/result", {"taskId": task_id})
        assert await eventually(lambda: "cancelled" in observer.statuses(task_id))
    assert cancelled["status"] == "cancelled" and cancelled["taskId"] == task_id and "ttl" in cancelled
    assert got["status"] == "cancelled"
    assert "terminal" in again.message
    assert result["structuredContent"]["status"] == "cancelled"
    assert observer.statuses(task_id).count("cancelled") == 1


@pytest.mark.parametrize("arguments", [{"message": ""}, {"message": "hi", "session_id": "../etc"}, {}])
async def test_legacy_bad_arguments_make_a_failed_task_with_the_plain_error_result(
    settings: Settings, fake: FakeOllama, arguments: dict[str, Any]
) -> None:
    async with legacy(settings) as client:
        task = (await task_call(client, "chat", arguments))["task"]
        got = await request(client, "tasks/get", {"taskId": task["taskId"]})
        result = await request(client, "tasks/result", {"taskId": task["taskId"]})
        plain = await client.call_tool("chat", arguments)
    assert task["status"] == "working"
    assert got["status"] == "failed" and got["statusMessage"]
    assert result["isError"] is True and plain.is_error is True
    assert result["content"][0]["text"] == plain.content[0].text  # type: ignore[union-attr]
    assert fake.chat_requests == []


async def test_legacy_protocol_errors(settings: Settings) -> None:
    async with legacy(settings) as client:
        with pytest.raises(MCPError) as not_a_task_tool:
            await task_call(client, "list_models", {})
        with pytest.raises(MCPError) as unknown_tool:
            await task_call(client, "no_such_tool", {})
        with pytest.raises(MCPError) as bad_ttl:
            await task_call(client, "chat", {"message": "hi"}, {"ttl": -1})
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            await expect_error(INVALID_PARAMS, client, method, {"taskId": "0" * 32})
        await expect_error(INVALID_PARAMS, client, "tasks/list", {"cursor": "not-ours"})
    assert not_a_task_tool.value.code == METHOD_NOT_FOUND
    assert unknown_tool.value.code == INVALID_PARAMS
    assert bad_ttl.value.code == INVALID_PARAMS


async def test_legacy_ttl_is_capped(settings: Settings) -> None:
    async with legacy(settings) as client:
        task = (await task_call(client, "chat", {"message": "hi"}, {"ttl": 10**12}))["task"]
        await request(client, "tasks/result", {"taskId": task["taskId"]})
    assert task["ttl"] == task_terms.MAX_TTL_MS


async def test_tasks_list_pages_through_every_task_with_opaque_cursors(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_legacy, "LIST_PAGE_SIZE", 2)
    async with legacy(settings) as client:
        created = [
            (await task_call(client, "chat", {"message": f"m{i}"}))["task"]["taskId"] for i in range(5)
        ]
        listed, cursor, pages = [], None, 0
        while True:
            page = await request(client, "tasks/list", {"cursor": cursor} if cursor else {})
            pages += 1
            assert len(page["tasks"]) <= 2
            assert all("ttl" in task for task in page["tasks"])
            listed += [task["taskId"] for task in page["tasks"]]
            cursor = page.get("nextCursor")
            if cursor is None:
                break
    assert sorted(listed) == sorted(created)
    assert pages == 3


async def test_tasks_are_invisible_to_another_connection(settings: Settings) -> None:
    async with legacy(settings) as mine, legacy(settings) as theirs:
        task_id = (await task_call(mine, "chat", {"message": "secret"}))["task"]["taskId"]
        await request(mine, "tasks/result", {"taskId": task_id})
        unknown = await expect_error(INVALID_PARAMS, theirs, "tasks/get", {"taskId": "f" * 32})
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            foreign = await expect_error(INVALID_PARAMS, theirs, method, {"taskId": task_id})
            assert (foreign.message, foreign.error.data) == (unknown.message, unknown.error.data)
        assert (await request(theirs, "tasks/list", {}))["tasks"] == []
        assert [t["taskId"] for t in (await request(mine, "tasks/list", {}))["tasks"]] == [task_id]


async def test_expired_tasks_are_gone_from_memory_and_store(settings: Settings) -> None:
    observer = StatusObserver()
    async with legacy(settings, extensions=[observer]) as client:
        task_id = (await task_call(client, "chat", {"message": "brief"}, {"ttl": 0}))["task"]["taskId"]
        assert await eventually(lambda: "completed" in observer.statuses(task_id))
        await anyio.sleep(0.01)  # past createdAt + 0 ms, whatever the clock's resolution
        await expect_error(INVALID_PARAMS, client, "tasks/get", {"taskId": task_id})
        assert (await request(client, "tasks/list", {}))["tasks"] == []
    with ChatStore.open(settings.db_path) as store:
        assert store.get_job(task_id) is None


async def test_finished_tasks_beyond_the_memory_bound_are_answered_from_the_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taskbook, "FINISHED_TASKS_KEPT", 1)
    async with legacy(settings) as client:
        ids = [(await task_call(client, "chat", {"message": f"m{i}"}))["task"]["taskId"] for i in range(3)]
        answers = [await request(client, "tasks/result", {"taskId": task_id}) for task_id in ids]
        again = await request(client, "tasks/result", {"taskId": ids[0]})
        got = await request(client, "tasks/get", {"taskId": ids[0]})
    assert again == answers[0]
    assert got["status"] == "completed" and got["ttl"] == task_terms.DEFAULT_TTL_MS
    with ChatStore.open(settings.db_path) as store:
        record = store.get_job(ids[0])
    assert record is not None and record.requester and record.expires_at and record.status == "complete"
    assert (
        json.loads(record.result or "{}")["structuredContent"]["answer"]
        == again["structuredContent"]["answer"]
    )


# ---------------------------------------------------------------------------- 2026-07-28 in memory


@pytest.fixture
def always_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 2026-07-28 chat becomes a task (no direct answer however fast)."""
    monkeypatch.setattr(tasks_modern, "DIRECT_ANSWER_SECONDS", 0)


async def poll(client: Client, task_id: str, until: set[str]) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            got = await request(client, "tasks/get", {"taskId": task_id})
            if got["status"] in until:
                return got
            await anyio.sleep(0.02)


async def test_modern_fast_answer_comes_back_directly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_modern, "DIRECT_ANSWER_SECONDS", 30.0)
    async with modern(settings, TasksRequester()) as client:
        result = await client.session.call_tool("chat", {"message": "quick"}, allow_claimed=True)
    assert isinstance(result, CallToolResult) and result.is_error is not True
    assert result.structured_content and result.structured_content["status"] == "complete"


@pytest.mark.usefixtures("always_task")
async def test_modern_task_completes_with_the_result_inline(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(Behavior(token_count=20, token_delay=0.01))
    async with modern(settings, TasksRequester()) as client:
        handle = await client.session.call_tool("chat", {"message": "count"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        done = await poll(client, handle.task_id, {"completed", "failed", "cancelled"})
        with pytest.raises(MCPError) as no_result:
            await request(client, "tasks/result", {"taskId": handle.task_id})
        with pytest.raises(MCPError) as no_list:
            await request(client, "tasks/list", {})
    assert handle.status == "working" and handle.ttl_ms == task_terms.DEFAULT_TTL_MS
    assert handle.poll_interval_ms == task_terms.POLL_INTERVAL_MS
    assert done["status"] == "completed" and done["resultType"] == "complete"
    assert done["result"]["resultType"] == "complete" and done["result"]["isError"] is False
    assert done["result"]["structuredContent"]["answer"].startswith("tok0 tok1")
    assert no_result.value.code == no_list.value.code == METHOD_NOT_FOUND


@pytest.mark.usefixtures("always_task")
async def test_modern_ollama_failure_is_a_completed_task_with_an_error_result(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.enqueue(Behavior(status=500, error="llama runner process has terminated"))
    async with modern(settings, TasksRequester()) as client:
        handle = await client.session.call_tool("chat", {"message": "boom"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        done = await poll(client, handle.task_id, {"completed", "failed", "cancelled"})
    assert done["status"] == "completed" and done["result"]["isError"] is True
    assert "terminated" in done["result"]["content"][0]["text"]


@pytest.mark.usefixtures("always_task")
async def test_modern_cancel_stops_the_model(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(SLOW)
    async with modern(settings, TasksRequester()) as client:
        handle = await client.session.call_tool("chat", {"message": "long"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        await wait_active(fake)
        ack = await request(client, "tasks/cancel", {"taskId": handle.task_id})
        assert await hung_up(fake)
        got = await request(client, "tasks/get", {"taskId": handle.task_id})
        again = await request(client, "tasks/cancel", {"taskId": handle.task_id})
        updated = await request(client, "tasks/update", {"taskId": handle.task_id, "inputResponses": {}})
    assert ack == {"resultType": "complete", "_meta": ack["_meta"]}
    assert got["status"] == "cancelled" and "result" not in got
    assert again["resultType"] == updated["resultType"] == "complete"


@pytest.mark.usefixtures("always_task")
async def test_modern_requests_without_the_extension(settings: Settings) -> None:
    async with modern(settings, TasksRequester()) as declaring, modern(settings) as plain:
        handle = await declaring.session.call_tool("chat", {"message": "x"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        result = await plain.call_tool("chat", {"message": "no tasks for me"})
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            error = await expect_error(
                MISSING_REQUIRED_CLIENT_CAPABILITY,
                plain,
                method,
                {"taskId": handle.task_id, "inputResponses": {}},
            )
            assert error.error.data == {"requiredCapabilities": {"extensions": {EXT: {}}}}
        for method in ("tasks/get", "tasks/cancel", "tasks/update"):
            await expect_error(INVALID_PARAMS, declaring, method, {"taskId": "0" * 32, "inputResponses": {}})
    assert isinstance(result, CallToolResult) and result.is_error is not True


@pytest.mark.usefixtures("always_task")
async def test_modern_tasks_are_invisible_to_another_client(settings: Settings) -> None:
    async with (
        modern(settings, TasksRequester(), name="alice") as alice,
        modern(settings, TasksRequester(), name="bob") as bob,
    ):
        handle = await alice.session.call_tool("chat", {"message": "mine"}, allow_claimed=True)
        assert isinstance(handle, TaskHandle)
        await poll(alice, handle.task_id, {"completed"})
        unknown = await expect_error(INVALID_PARAMS, bob, "tasks/get", {"taskId": "f" * 32})
        foreign = await expect_error(INVALID_PARAMS, bob, "tasks/get", {"taskId": handle.task_id})
        await expect_error(INVALID_PARAMS, bob, "tasks/cancel", {"taskId": handle.task_id})
    assert (foreign.message, foreign.error.data) == (unknown.message, unknown.error.data)


async def test_modern_declaring_the_extension_is_what_counts(settings: Settings) -> None:
    """An ad-only declaration in the envelope is enough for tasks/*: unknown ids, not -32021."""
    async with modern(settings, advertise(EXT)) as client:
        await expect_error(INVALID_PARAMS, client, "tasks/get", {"taskId": "0" * 32})


# ---------------------------------------------------------------------------- the official requester


def _installed(package: str) -> str | None:
    try:
        manifest = json.loads(
            (PREFIX / "node_modules" / package / "package.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


@pytest.fixture(scope="module")
def requester() -> str:
    """``node``, once the pinned requester packages are in ``.ci/node`` (installed with npm if missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    if any(_installed(p) != v for p, v in REQUESTER_PACKAGES.items()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(
                f"the tasks requester is not installed in {PREFIX} and npm is not on PATH: run .ci/run"
            )
        inspector = (ROOT / ".ci" / "inspector-version").read_text(encoding="utf-8").strip()
        # One install with the Inspector: npm drops unsaved packages an install does not name.
        argv = [npm, "install", "--prefix", str(PREFIX), "--no-save", "--no-audit", "--no-fund"]
        argv += ["--loglevel=error", f"@modelcontextprotocol/inspector@{inspector}"]
        argv += [f"{p}@{v}" for p, v in REQUESTER_PACKAGES.items()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or any(_installed(p) != v for p, v in REQUESTER_PACKAGES.items()):
            pytest.fail(f"`{' '.join(argv)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return node


def run_requester(
    node: str, settings: Settings, era: str, modes: str, tool: str = "chat"
) -> list[dict[str, Any]]:
    """The official requester's outputs, one per mode (``complete``, ``cancel`` or both,
    comma-separated, run one after the other on one connection) for ``tool`` (chat or pull_model)."""
    env = {
        **os.environ,
        "OLLAMA_HOST": settings.ollama_url,
        "MCP_OLLAMA_DB": settings.db_path,
        "MCP_OLLAMA_PRELOAD": "off",
        "MCP_OLLAMA_MAX_PARALLEL": "64",  # the fake serves any number at once
        "REQUESTER_TOOL": tool,
    }
    argv = [node, str(REQUESTER), str(PREFIX), era, modes, sys.executable, "-m", "mcp_ollama"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    outputs = [json.loads(line) for line in proc.stdout.strip().splitlines()[-len(modes.split(",")) :]]
    return outputs


@pytest.mark.clients
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_official_requester_completes_a_chat_task_then_cancels_one(
    requester: str, settings: Settings, fake: FakeOllama, era: str
) -> None:
    # 30 tokens at 50 ms: at least 1.45 s, past the 2026-07-28 direct-answer wait, so a task;
    # then one that outlasts the test, cancelled once its first token is in.
    fake.enqueue(Behavior(token_count=30, token_delay=0.05), SLOW)
    done, cancelled = run_requester(requester, settings, era, "complete,cancel")
    assert done["kind"] == "task" and done["status"] == "completed"
    answer = done["result"]["structuredContent"]["answer"]
    assert answer.startswith("tok0 tok1") and answer.split()[-1] == "tok29"
    assert done["result"]["content"][0]["text"] == answer
    if era == "legacy":
        assert done["statuses"][-1] == "completed"
    assert cancelled == {"kind": "task", "acknowledged": True, "snapshot": "cancelled"}
    assert fake.wait_for_hangup(), "Ollama must see the stream closed"


async def test_a_task_refused_for_its_arguments_is_stored_with_its_expiry_and_result(
    settings: Settings,
) -> None:
    async with legacy(settings) as client:
        task = (await task_call(client, "chat", {"message": ""}, {"ttl": 60_000}))["task"]
        result = await request(client, "tasks/result", {"taskId": task["taskId"]})
    with ChatStore.open(settings.db_path) as store:
        assert await eventually(lambda: store.get_job(task["taskId"]) is not None)
        record = store.get_job(task["taskId"])
    assert record is not None
    assert record.status == "failed" and record.expires_at is not None
    assert record.expires_at - record.started_at == timedelta(milliseconds=60_000)
    assert record.result is not None and json.loads(record.result)["content"] == result["content"]
    # Expired, it is purged like any other task (it used to be kept for ever).
    with ChatStore.open(settings.db_path) as store:
        store.delete_expired_jobs(record.expires_at + timedelta(seconds=1))
        assert store.get_job(task["taskId"]) is None


async def test_two_servers_in_one_process_share_no_task_state(settings: Settings) -> None:
    async with legacy(settings) as first, legacy(settings) as second:
        task = (await task_call(first, "chat", {"message": "hi"}))["task"]
        await request(first, "tasks/result", {"taskId": task["taskId"]})
        listed_first = await request(first, "tasks/list", {})
        listed_second = await request(second, "tasks/list", {})
        await expect_error(INVALID_PARAMS, second, "tasks/get", {"taskId": task["taskId"]})
    assert [t["taskId"] for t in listed_first["tasks"]] == [task["taskId"]]
    assert listed_second["tasks"] == []


async def test_one_user_may_run_only_so_many_tasks_at_once(settings: Settings, fake: FakeOllama) -> None:
    one = dataclasses.replace(settings, max_tasks_per_user=1)
    fake.enqueue(Behavior(token_count=2000, token_delay=0.02))
    async with legacy(one) as client:
        first = (await task_call(client, "chat", {"message": "long"}))["task"]
        refused = await expect_error(
            INTERNAL_ERROR,
            client,
            "tools/call",
            {"name": "chat", "arguments": {"message": "another"}, "task": {}},
        )
        assert await eventually(lambda: fake.active_streams >= 1)  # the long answer is being written
        await request(client, "tasks/cancel", {"taskId": first["taskId"]})
        again = (await task_call(client, "chat", {"message": "now it fits"}))["task"]
        await request(client, "tasks/result", {"taskId": again["taskId"]})
    assert "You already have 1 task running" in refused.error.message
    assert "--max-tasks-per-user" in refused.error.message
