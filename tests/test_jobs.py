"""Answers that take longer than the host will wait: chat as a job, chat_result, cancel_chat, preload.

The answer deadline is short here (0.5 s) and the fake's streams are slow (token delays are
lower bounds), so a call always outlives its deadline; nothing asserts how long anything took.
"""

from __future__ import annotations

import dataclasses
import re

import anyio
import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.pool import OllamaPool
from mcp_ollama.config import Settings
from mcp_ollama.core.chat import ChatService
from mcp_ollama.core.job import Handoff, Job, JobState
from mcp_ollama.core.jobs import Jobs
from mcp_ollama.core.planning import plan_turn
from mcp_ollama.core.turns import TurnOutcome
from mcp_ollama.server import build_server
from mcp_ollama.store import ChatStore, JobRecord

from .conftest import client_for, connect, eventually, stdio_params
from .fake_ollama import Behavior, FakeOllama
from .test_server import stored, text_of

pytestmark = pytest.mark.anyio

SLOW = Behavior(token_count=24, token_delay=0.05)
"""At least 1.15 s of answer: more than two deadlines' worth."""


@pytest.fixture
def short(settings: Settings) -> Settings:
    return dataclasses.replace(settings, answer_deadline=0.5)


async def collect(client, session_id: str, limit: int = 200) -> tuple[dict, int]:
    """Call chat_result until the answer is complete; the final structured result and the calls made."""
    for calls in range(1, limit + 1):
        result = await client.call_tool("chat_result", {"session_id": session_id})
        assert result.is_error is not True, text_of(result)
        if result.structured_content["status"] != "generating":
            return result.structured_content, calls
    raise AssertionError(f"still generating after {limit} chat_result calls")


async def test_a_slow_answer_comes_back_partial_then_whole_and_is_stored_once(
    short: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(SLOW)
    async with connect(short, era) as client:
        first = await client.call_tool("chat", {"message": "Tell me a long story"})
        partial = first.structured_content
        assert first.is_error is not True
        assert partial["status"] == "generating"
        sid = partial["session_id"]
        assert "chat_result" in text_of(first) and sid in text_of(first)
        assert partial["answer"] == "".join(f"tok{i} " for i in range(partial["tokens_so_far"]))
        assert stored(short, sid) == []  # nothing is stored before the answer is complete

        final, _ = await collect(client, sid)
        assert final["status"] == "complete"
        assert final["answer"] == "".join(f"tok{i} " for i in range(24))
        assert final["usage"]["completion_tokens"] == 24
        assert final["new_session"] is True

        again = await client.call_tool("chat_result", {"session_id": sid})
    assert stored(short, sid) == [("user", "Tell me a long story"), ("assistant", final["answer"])]
    # Asked again once the job is done: the same complete answer, not a second turn.
    assert again.structured_content["status"] == "complete"
    assert again.structured_content["answer"] == final["answer"]
    assert len(fake.chat_requests) == 1


async def test_a_finished_answer_is_stored_even_if_nobody_asks_for_it(
    short: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(token_count=20, token_delay=0.05))
    async with connect(short, era) as client:
        first = await client.call_tool("chat", {"message": "write on"})
        sid = first.structured_content["session_id"]
        assert first.structured_content["status"] == "generating"
        assert await eventually(lambda: len(stored(short, sid)) == 2, timeout=60)
    assert stored(short, sid)[1][1] == "".join(f"tok{i} " for i in range(20))


async def test_cancel_chat_stops_ollama_and_leaves_the_session_as_it_was(
    short: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(short, era) as client:
        sid = (await client.call_tool("chat", {"message": "keep me"})).structured_content["session_id"]
        before = stored(short, sid)
        fake.enqueue(Behavior(token_count=10_000, token_delay=0.01))
        pending = await client.call_tool("chat", {"message": "never stored", "session_id": sid})
        assert pending.structured_content["status"] == "generating"
        cancelled = await client.call_tool("cancel_chat", {"session_id": sid})
        assert cancelled.is_error is not True
        assert cancelled.structured_content["cancelled"] is True
        assert await eventually(lambda: fake.hangups >= 1)  # Ollama's stream was closed: the model stopped
        after = await client.call_tool("chat_result", {"session_id": sid})
        nothing = await client.call_tool("cancel_chat", {"session_id": sid})
    assert after.structured_content["status"] == "cancelled"
    assert "nothing of it was stored" in text_of(after)
    assert nothing.structured_content["cancelled"] is False
    assert stored(short, sid) == before


async def test_a_second_chat_waits_for_the_first_and_never_interleaves(
    short: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(token_count=30, token_delay=0.05), Behavior(token_count=5))
    async with connect(short, era) as client:
        first = await client.call_tool("chat", {"message": "first question"})
        sid = first.structured_content["session_id"]
        second = await client.call_tool("chat", {"message": "second question", "session_id": sid})
        if second.structured_content["status"] == "generating":
            final, _ = await collect(client, sid)  # chat_result follows the newest message
        else:
            final = second.structured_content
    assert final["status"] == "complete"
    first_answer = "".join(f"tok{i} " for i in range(30))
    assert stored(short, sid) == [
        ("user", "first question"),
        ("assistant", first_answer),
        ("user", "second question"),
        ("assistant", final["answer"]),
    ]
    # The second request reached Ollama only once the first answer was whole: it carries it.
    second_request = fake.chat_requests[1]["messages"]
    assert [m["content"] for m in second_request[1:]] == ["first question", first_answer, "second question"]


async def test_cancelling_the_chat_request_before_the_deadline_stops_the_model(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(token_count=10_000, token_delay=0.01))
    async with connect(settings, era) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "chat", {"message": "stop me", "session_id": "s-cancel"})
            assert await eventually(lambda: fake.active_streams == 1)
            tg.cancel_scope.cancel()
        assert await eventually(lambda: fake.hangups >= 1)
        result = await client.call_tool("chat_result", {"session_id": "s-cancel"})
    assert result.structured_content["status"] == "cancelled"
    assert stored(settings, "s-cancel") == []


async def test_no_deadline_waits_for_the_whole_answer(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.enqueue(Behavior(token_count=30, token_delay=0.05))
    patient = dataclasses.replace(settings, answer_deadline=0.0)
    async with connect(patient, era) as client:
        result = await client.call_tool("chat", {"message": "take your time"})
    assert result.structured_content["status"] == "complete"
    assert result.structured_content["tokens_so_far"] == 30


async def test_chat_result_without_a_job_returns_the_last_stored_answer(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    with ChatStore.open(settings.db_path) as store:
        store.append_turn(
            "old", model="llama3:8b", user="hi", assistant="hello there", meta={"eval_count": 2}
        )
    async with connect(settings, era) as client:
        result = await client.call_tool("chat_result", {"session_id": "old"})
        unknown = await client.call_tool("chat_result", {"session_id": "nobody"})
        hostile = await client.call_tool("chat_result", {"session_id": "../etc"})
        cancel_unknown = await client.call_tool("cancel_chat", {"session_id": "nobody"})
    assert result.structured_content["status"] == "stored"
    assert result.structured_content["answer"] == "hello there"
    assert "last stored answer" in text_of(result)
    for refused in (unknown, hostile, cancel_unknown):
        assert refused.is_error is True
    assert "nobody" in text_of(unknown)


async def test_heartbeats_say_what_happens_before_the_first_token(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """The model loads, then reads the prompt: progress every heartbeat, strictly increasing."""
    fake.load_delay = 3600.0  # released by the test once the heartbeats have been seen
    beating = dataclasses.replace(settings, heartbeat_interval=0.1)
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))
        if sum("loading" in (m or "") for _, m in seen) == 2:
            fake.load_delay = 0.0  # the model has loaded; now it "reads the prompt" for a while

    fake.enqueue(Behavior(first_token_delay=0.5, token_count=5, token_delay=0.2))
    async with connect(beating, era) as client:
        result = await client.call_tool("chat", {"message": "hello"}, progress_callback=on_progress)
    assert result.structured_content is not None, text_of(result)
    assert result.structured_content["status"] == "complete"
    sid = result.structured_content["session_id"]
    suffix = f" (session {sid})"  # every message names the session: a host that gives up knows where to look
    assert all((m or "").endswith(suffix) for _, m in seen)
    messages = [(m or "").removesuffix(suffix) for _, m in seen]
    assert messages[0] == "loading llama3:8b…"
    assert any(re.fullmatch(r"reading the prompt \(\d+ tokens\)…", m) for m in messages)
    assert messages[-1].endswith("tokens so far")
    values = [v for v, _ in seen]
    assert values == sorted(set(values)), "progress must strictly increase"


async def test_preload_loads_the_default_model_before_any_tool_call(
    settings: Settings, fake: FakeOllama
) -> None:
    preloading = dataclasses.replace(settings, preload=True, num_ctx=8192)
    async with connect(preloading, "legacy") as client:
        assert await eventually(lambda: fake.loads == ["llama3:8b"], timeout=30)
        preload = fake.chat_requests[0]
        assert preload["messages"] == [] and preload["model"] == "llama3:8b"
        await client.call_tool("chat", {"message": "now"})
    # The chat used the same num_ctx, so Ollama did not load the model a second time.
    assert fake.chat_requests[1]["options"]["num_ctx"] == preload["options"]["num_ctx"] == 8192
    assert fake.loads == ["llama3:8b"]


async def test_a_preload_told_to_wait_starts_only_when_let_go(settings: Settings, fake: FakeOllama) -> None:
    """Over stdio the preload waits for the first answer to be out (``serve`` passes the event):
    a chat made meanwhile reaches Ollama first, and the preload follows once the event is set."""
    answered = anyio.Event()
    server = build_server(dataclasses.replace(settings, preload=True), first_answer=answered)
    async with client_for(server, "legacy") as client:
        await client.call_tool("chat", {"message": "first"})
        assert [body["messages"] != [] for body in fake.chat_requests] == [True]  # no preload yet
        answered.set()
        assert await eventually(lambda: len(fake.chat_requests) == 2, timeout=30)
    assert fake.chat_requests[1]["messages"] == []  # the preload, after the chat
    assert fake.loads == ["llama3:8b"]


async def test_preload_is_skipped_quietly_when_ollama_is_down(settings: Settings) -> None:
    down = dataclasses.replace(settings, preload=True, ollama_url="http://127.0.0.1:9")
    async with connect(down, "legacy") as client:
        tools = await client.list_tools()
    assert "chat_result" in {t.name for t in tools.tools}


async def test_a_restart_mid_answer_reports_the_generation_as_interrupted(
    short: Settings, fake: FakeOllama
) -> None:
    fake.enqueue(Behavior(token_count=10_000, token_delay=0.01))
    params = stdio_params(short, "--answer-deadline", "0.5")
    async with client_for(params, "legacy") as client:
        pending = await client.call_tool("chat", {"message": "interrupted"})
        sid = pending.structured_content["session_id"]
        assert pending.structured_content["status"] == "generating"
    assert await eventually(lambda: fake.hangups >= 1, timeout=30)  # the server stopped, and so did the model
    async with client_for(stdio_params(short), "modern") as client:
        after = await client.call_tool("chat_result", {"session_id": sid})
    assert after.structured_content["status"] == "interrupted"
    assert "interrupted" in text_of(after) and "chat" in text_of(after)
    assert stored(short, sid) == []


async def test_a_dead_processs_running_job_reads_as_interrupted(short: Settings, fake: FakeOllama) -> None:
    """SIGKILL leaves a 'running' record whose heartbeat stops; after a while it is interrupted.
    (``short``: chat_result waits out the answer deadline for a job another process is writing.)"""
    settings = short
    from datetime import UTC, datetime, timedelta

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with ChatStore.open(settings.db_path) as store:
        store.record_job(
            JobRecord(
                id="j1",
                session_id="killed",
                model="llama3:8b",
                status="running",
                owner="a-dead-process",
                started_at=long_ago,
                heartbeat_at=long_ago,
            )
        )
        store.record_job(
            JobRecord(
                id="j2",
                session_id="alive",
                model="llama3:8b",
                status="running",
                owner="another-live-process",
                started_at=datetime.now(UTC),
                heartbeat_at=datetime.now(UTC),
            )
        )
    async with connect(settings, "legacy") as client:
        killed = await client.call_tool("chat_result", {"session_id": "killed"})
        alive = await client.call_tool("chat_result", {"session_id": "alive"})
    assert killed.structured_content["status"] == "interrupted"
    assert alive.structured_content["status"] == "generating"
    assert "Another mcp-ollama process" in text_of(alive)


async def test_the_new_tools_are_described(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["cancel_chat"].annotations.destructive_hint is True
    assert tools["chat_result"].annotations.read_only_hint is True
    assert "status" in tools["chat"].output_schema["properties"]
    assert "chat_result" in tools["chat"].description


async def test_a_finished_job_lets_go_of_its_commit_and_events_but_still_answers(
    settings: Settings, fake: FakeOllama
) -> None:
    """The last 256 finished jobs stay for chat_result: each keeps its answer, not the machinery of
    a running one (its handoff's commit, five events), which the garbage collector would walk."""
    store = ChatStore.open(":memory:")
    async with OllamaClient(settings.ollama_url) as client:
        service = ChatService(settings, OllamaPool([client]), store)
        async with Jobs(service, store) as jobs:
            first, second = (jobs.start(plan_turn(settings, f"hello {n}")) for n in (1, 2))
            taken = first.ended  # as a reader takes it while the job runs
            for job in (first, second):
                assert await job.join(30)
                assert await eventually(lambda job=job: job.ended is job.decided, timeout=30)
            assert taken.is_set()
            assert first.ended is second.ended is first.changed, "one shared event, already set"
            assert first._scope is second._scope, "one shared scope, never entered"
            assert first.ended.is_set()
            assert await first.wait(0) and await first.join(0)
            assert (
                first.outcome is not None
                and first.outcome.answer == "You said: hello 1. I have seen 0 earlier messages."
            )
    store.close()


async def test_a_job_keeps_what_it_runs_with_until_it_has_ended_and_exited(settings: Settings) -> None:
    job = Job("j1", plan_turn(settings, "hello"))
    settled, spent = anyio.Event(), anyio.CancelScope()
    settled.set()

    async def commit() -> TurnOutcome:
        raise AssertionError("not run here")

    async def undo(outcome: TurnOutcome) -> None:
        raise AssertionError("not run here")

    handoff = job.handoff = Handoff(commit, undo)
    job.release(settled, spent)  # running: nothing changes
    assert job.handoff is handoff and job.ended is not settled and job._scope is not spent
    job._end(JobState.COMPLETE)
    job.release(settled, spent)  # ended, but its task has not exited yet: a join() must still be woken
    assert job.handoff is handoff and job.ended is not settled and job._scope is not spent
    job._exited.set()
    job.release(settled, spent)
    assert job.handoff is None
    assert job.ended is job.decided is job.changed is settled
    assert job._scope is spent
    assert not job.cancel("too late"), "an ended job is not cancelled, and its scope is not touched"
    assert not spent.cancel_called
    assert await job.join(0)
