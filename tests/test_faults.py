"""Faults of Ollama, and oversized input, against the installed server as a real stdio subprocess.

Each test pre-fills a session straight into the SQLite file, spawns ``python -m mcp_ollama``
and drives it with the SDK's client. After the fault it checks three things: the tool error
says what happened, what to do, and where (Ollama's URL); the server still answers; and the
session's stored history is exactly what it was (read back with ``ChatStore`` afterwards).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import anyio
import pytest
from mcp_types import TextContent

from mcp_ollama.config import Settings
from mcp_ollama.core.budget import estimate_tokens
from mcp_ollama.core.prompts import DEFAULT_SYSTEM_PROMPT
from mcp_ollama.store import ChatStore, SessionInfo, StoredMessage

from .conftest import client_for, eventually, free_port, stdio_params
from .fake_ollama import Behavior, FakeModel, FakeOllama
from .rawstdio import RawServer

BIG = FakeModel(name="big:1m", context_length=1_048_576)
"""A model whose own window is the largest num_ctx allowed (Ollama caps num_ctx at a model's own)."""
WIDE = {"num_ctx": 1_048_576}

pytestmark = pytest.mark.anyio

SID = "fault-session"
FIRST_USER = "Remember: the code word is heliotrope."
FIRST_ANSWER = "Noted, the code word is heliotrope."
CALL_TIMEOUT = 30.0
"""Seconds any one call may take before the test calls it a hang."""


def text_of(result: Any) -> str:
    assert result.content, "a tool result must carry content"
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def prefill(db_path: str, session_id: str = SID, turns: int = 1, user: str = "", assistant: str = "") -> None:
    """Write ``turns`` turns into the database before the server starts."""
    with ChatStore.open(db_path) as store:
        for i in range(turns):
            store.append_turn(
                session_id,
                model="llama3:8b",
                user=user.replace("{i}", str(i)) if user else FIRST_USER,
                assistant=assistant.replace("{i}", str(i)) if assistant else FIRST_ANSWER,
            )


def snapshot(db_path: str, session_id: str = SID) -> tuple[SessionInfo | None, list[StoredMessage]]:
    """The session's summary and every stored message, read with a store of our own."""
    with ChatStore.open(db_path) as store:
        info = store.get_session(session_id)
        return info, (store.messages(session_id) if info is not None else [])


def with_url(settings: Settings, url: str) -> Settings:
    return dataclasses.replace(settings, ollama_url=url)


# ---------------------------------------------------------------------------- Ollama faults

FAULTS: dict[str, tuple[Behavior | None, dict[str, Any], list[str]]] = {
    # id: (scripted behaviour, extra chat arguments, fragments the error text must contain)
    "hang-until-timeout": (
        Behavior(hang=True),
        {},
        ["sent nothing for 0.5 s", "abandoned", "try again", "MCP_OLLAMA_GENERATION_TIMEOUT"],
    ),
    "silent-mid-stream-until-timeout": (
        Behavior(tokens=["The ", "answer ", "is "], token_delay=30.0),
        {},
        ["sent nothing for 0.5 s", "abandoned", "try again", "MCP_OLLAMA_GENERATION_TIMEOUT"],
    ),
    "http-500": (
        Behavior(status=500, error="llama runner process has terminated: signal: killed"),
        {},
        [
            "answered HTTP 500",
            "llama runner process has terminated: signal: killed",
            "Check Ollama's own log",
        ],
    ),
    "model-404": (
        None,
        {"model": "llama3:70b"},
        [
            "'llama3:70b' is not available",
            "Did you mean 'llama3:8b'?",
            "ollama pull llama3:70b",
            "ollama list",
        ],
    ),
    "error-line-mid-stream": (
        Behavior(tokens=["The ", "answer ", "is "], error_after=2, error="CUDA error: out of memory"),
        {},
        ["broke off", "Ollama reported: CUDA error: out of memory", "Nothing was saved", "try again"],
    ),
    "cut-mid-stream": (
        Behavior(tokens=["The ", "answer ", "is "], cut_after=2),
        {},
        ["broke off", "the connection closed before the answer was complete", "Nothing was saved"],
    ),
    "non-json-line-mid-stream": (
        Behavior(tokens=["The ", "answer ", "is "], malformed_after=1),
        {},
        ["broke off", "malformed line from Ollama", "Nothing was saved", "try again"],
    ),
    "stream-ends-without-done": (
        Behavior(tokens=["The ", "answer ", "is "], end_after=2),
        {},
        ["broke off", "the connection closed before the answer was complete", "Nothing was saved"],
    ),
}


async def test_every_ollama_fault_is_a_clear_tool_error_and_loses_nothing_over_stdio(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """One server process meets every fault in turn, each on a session of its own: every error
    says what, why and where; nothing of the failed turn is stored; the next chat is answered."""
    sessions = {fault: f"{SID}-{fault}" for fault in FAULTS}
    for sid in sessions.values():
        prefill(settings.db_path, sid)
    params = stdio_params(settings, MCP_OLLAMA_GENERATION_TIMEOUT="0.5")
    async with client_for(params, era) as client:
        for fault, sid in sessions.items():
            fake.reset()
            await _meets_fault(client, fake, settings.db_path, fault, sid)


async def _meets_fault(client: Any, fake: FakeOllama, db_path: str, fault: str, sid: str) -> None:
    behavior, extra, fragments = FAULTS[fault]
    before = snapshot(db_path, sid)
    if behavior is not None:
        fake.enqueue(behavior)
    with anyio.fail_after(CALL_TIMEOUT):
        failed = await client.call_tool("chat", {"message": "doomed", "session_id": sid, **extra})
    assert failed.is_error is True, fault
    text = text_of(failed)
    for fragment in [*fragments, fake.url]:
        assert fragment in text, f"{fault}: {fragment!r} missing from {text!r}"
    assert "Traceback" not in text
    if fault == "model-404":  # found out from the model's details, before any chat
        assert [r.body for r in fake.requests if r.path == "/api/show"] == [{"model": "llama3:70b"}]
        assert fake.chat_requests == []
    else:
        assert fake.chat_requests, f"{fault}: the request reached Ollama"
        assert fake.chat_requests[-1]["messages"][-1] == {"role": "user", "content": "doomed"}
    if "timeout" in fault:
        assert await eventually(lambda: fake.hangups >= 1), (
            f"{fault}: the abandoned request's connection is closed"
        )
    assert snapshot(db_path, sid) == before, f"{fault}: a failed turn must store nothing"

    with anyio.fail_after(CALL_TIMEOUT):
        again = await client.call_tool("chat", {"message": "and now?", "session_id": sid})
    assert again.is_error is not True, f"{fault}: {text_of(again)}"
    assert text_of(again) == "You said: and now?. I have seen 2 earlier messages."
    assert [m["content"] for m in fake.chat_requests[-1]["messages"][1:]] == [
        FIRST_USER,
        FIRST_ANSWER,
        "and now?",
    ]
    _, messages = snapshot(db_path, sid)
    assert [(m.role, m.content) for m in messages] == [
        ("user", FIRST_USER),
        ("assistant", FIRST_ANSWER),
        ("user", "and now?"),
        ("assistant", "You said: and now?. I have seen 2 earlier messages."),
    ], fault


async def test_ollama_not_listening_is_a_clear_tool_error_and_loses_nothing_over_stdio(
    settings: Settings, era: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    prefill(settings.db_path)
    before = snapshot(settings.db_path)
    async with client_for(stdio_params(with_url(settings, url)), era) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            failed = await client.call_tool("chat", {"message": "anyone there?", "session_id": SID})
            models = await client.call_tool("list_models", {})
        for result in (failed, models):
            assert result.is_error is True
            text = text_of(result)
            for fragment in ("Cannot reach Ollama at", url, "Is it running?", "ollama serve", "OLLAMA_HOST"):
                assert fragment in text, f"{fragment!r} missing from {text!r}"
        assert snapshot(settings.db_path) == before
        # Everything that does not need Ollama keeps working, the stored session included.
        with anyio.fail_after(CALL_TIMEOUT):
            tools = await client.list_tools()
            read = await client.read_resource(f"chat://sessions/{SID}")
        assert {t.name for t in tools.tools} >= {"chat", "list_models"}
        transcript = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert [m["content"] for m in transcript["messages"]] == [FIRST_USER, FIRST_ANSWER]
    assert snapshot(settings.db_path) == before


async def test_client_cancelling_a_slow_stream_hangs_up_on_ollama_and_frees_the_session(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    prefill(settings.db_path)
    before = snapshot(settings.db_path)
    fake.enqueue(Behavior(tokens=["slow "] * 1000, token_delay=0.02))
    async with client_for(stdio_params(settings), era) as client:
        async with anyio.create_task_group() as tg:

            async def doomed_call() -> None:
                await client.call_tool("chat", {"message": "never stored", "session_id": SID})
                raise AssertionError("the cancelled call must not complete")

            tg.start_soon(doomed_call)
            assert await eventually(lambda: fake.active_streams >= 1, timeout=10), "the stream started"
            await anyio.sleep(0.1)  # a few tokens in
            tg.cancel_scope.cancel()
        assert await eventually(lambda: fake.hangups >= 1), "Ollama must see the client hang up"
        assert await eventually(lambda: fake.active_streams == 0)
        assert snapshot(settings.db_path) == before
        # The cancelled turn released the session's lock: the next call on it goes straight through.
        with anyio.fail_after(CALL_TIMEOUT):
            again = await client.call_tool("chat", {"message": "still there?", "session_id": SID})
        assert text_of(again) == "You said: still there?. I have seen 2 earlier messages."
    _, messages = snapshot(settings.db_path)
    assert "never stored" not in [m.content for m in messages]
    assert len(messages) == 4


# ---------------------------------------------------------------------------- oversized input


async def test_multi_megabyte_message_is_refused_by_the_limit_and_the_server_keeps_serving(
    settings: Settings, fake: FakeOllama
) -> None:
    prefill(settings.db_path)
    before = snapshot(settings.db_path)
    huge = "x" * 5_000_000
    async with client_for(stdio_params(settings), "legacy") as client:
        with anyio.fail_after(CALL_TIMEOUT):
            refused = await client.call_tool("chat", {"message": huge, "session_id": SID})
        assert refused.is_error is True
        text = text_of(refused)
        assert "5,000,000 characters" in text
        assert "the limit is 200,000 (MCP_OLLAMA_MAX_MESSAGE_CHARS)" in text
        assert "Shorten it" in text
        assert len(text) < 1000, "the error must not echo the message back"
        assert fake.chat_requests == []
        assert snapshot(settings.db_path) == before
        with anyio.fail_after(CALL_TIMEOUT):
            again = await client.call_tool("chat", {"message": "small one", "session_id": SID})
        assert text_of(again) == "You said: small one. I have seen 2 earlier messages."


async def test_multi_megabyte_message_within_a_raised_limit_fits_the_context_or_says_why(
    settings: Settings, fake: FakeOllama
) -> None:
    prefill(settings.db_path)
    before = snapshot(settings.db_path)
    params = stdio_params(
        settings, MCP_OLLAMA_MAX_MESSAGE_CHARS="6000000", MCP_OLLAMA_MAX_ANSWER_CHARS="4000000"
    )
    big = "y" * 5_000_000
    fits = "z" * 3_000_000
    fake.models.append(BIG)
    async with client_for(params, "legacy") as client:
        # 5 MB is about 1.25 M tokens: more than even the largest num_ctx allowed (1,048,576).
        with anyio.fail_after(CALL_TIMEOUT):
            too_big = await client.call_tool(
                "chat",
                {"message": big, "session_id": SID, "model": BIG.name, "options": WIDE},
            )
        assert too_big.is_error is True
        text = text_of(too_big)
        assert "too long for big:1m's context window of 1,048,576 tokens" in text
        assert "num_ctx" in text and "MCP_OLLAMA_MAX_CONTEXT" in text
        assert fake.chat_requests == []
        assert snapshot(settings.db_path) == before
        # 3 MB (about 750 k tokens) fits a 1 M window: sent whole, answered and stored whole.
        with anyio.fail_after(CALL_TIMEOUT):
            answered = await client.call_tool(
                "chat",
                {"message": fits, "session_id": SID, "model": BIG.name, "options": WIDE},
            )
        assert answered.is_error is not True, text_of(answered)
        expected = f"You said: {fits}. I have seen 2 earlier messages."
        assert text_of(answered) == expected
        assert answered.structured_content is not None
        assert answered.structured_content["answer"] == expected
        sent = fake.chat_requests[-1]
        assert sent["options"] == {"num_ctx": 1_048_576}
        assert [m["content"] for m in sent["messages"][1:]] == [FIRST_USER, FIRST_ANSWER, fits]
        with anyio.fail_after(CALL_TIMEOUT):
            small = await client.call_tool("chat", {"message": "and a small one", "session_id": SID})
        assert small.is_error is not True
    _, messages = snapshot(settings.db_path)
    assert [m.content for m in messages][2:] == [
        fits,
        expected,
        "and a small one",
        text_of(small),
    ]


def _read_syscalls(pid: int) -> int:
    with open(f"/proc/{pid}/io") as io:
        for line in io:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    raise AssertionError("no syscr in /proc/<pid>/io")


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/io"), reason="needs Linux /proc/<pid>/io")
def test_a_megabyte_line_is_read_in_bulk_not_one_system_call_per_byte(
    settings: Settings, fake: FakeOllama
) -> None:
    """Counted in read(2) calls, not seconds: a 1 MB line should take a few dozen reads, not a million.

    (One read per byte costs about 0.4 s of CPU per megabyte here, in a thread that holds the GIL.)
    """
    env = {
        "OLLAMA_HOST": settings.ollama_url,
        "MCP_OLLAMA_DB": settings.db_path,
        "MCP_OLLAMA_PRELOAD": "off",
        "MCP_OLLAMA_MAX_PARALLEL": "64",  # the fake serves any number at once
        "HOME": os.environ["HOME"],
    }
    with RawServer(env) as server:
        server.initialize()
        assert server.request("ping")["result"] == {}
        before = _read_syscalls(server.proc.pid)
        assert server.request("ping", {"padding": "x" * 1_000_000}, timeout=30)["result"] == {}
        reads = _read_syscalls(server.proc.pid) - before
    assert reads < 10_000, f"{reads:,} read() calls for one 1 MB line: stdin is read unbuffered"


def _sent_history(body: dict[str, Any], message: str) -> list[tuple[str, str]]:
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert messages[-1] == {"role": "user", "content": message}
    return [(m["role"], m["content"]) for m in messages[1:-1]]


async def test_deep_history_is_trimmed_to_the_window_and_the_turn_limit(
    settings: Settings, fake: FakeOllama
) -> None:
    turns = 1500
    prefill(
        settings.db_path,
        turns=turns,
        user="question {i} " + "q" * 1500,
        assistant="answer {i} " + "a" * 2500,
    )
    history_turns = 1000
    fake.models.append(BIG)
    params = stdio_params(settings, MCP_OLLAMA_HISTORY_TURNS=str(history_turns))
    async with client_for(params, "legacy") as client:
        # llama3:8b's own window (8192 tokens, 1024 kept for the answer): the newest whole turns that fit.
        _, stored = snapshot(settings.db_path)
        with anyio.fail_after(CALL_TIMEOUT):
            narrow = await client.call_tool("chat", {"message": "short question", "session_id": SID})
        assert narrow.is_error is not True, text_of(narrow)
        history = _sent_history(fake.chat_requests[-1], "short question")
        budget = 8192 - 1024
        fixed = estimate_tokens(DEFAULT_SYSTEM_PROMPT) + estimate_tokens("short question")
        cost = fixed + sum(estimate_tokens(content) for _, content in history)
        assert cost <= budget
        assert len(history) % 2 == 0 and history, "whole turns, and at least one fits"
        assert history == [(m.role, m.content) for m in stored[len(stored) - len(history) :]]
        next_older = stored[len(stored) - len(history) - 2 : len(stored) - len(history)]
        assert cost + sum(estimate_tokens(m.content) for m in next_older) > budget, "the longest fit"
        assert narrow.structured_content["history_messages"] == len(history)  # type: ignore[index]

        # A 1 M-token window holds all 1500 turns, but only the last MCP_OLLAMA_HISTORY_TURNS are sent.
        _, stored = snapshot(settings.db_path)
        with anyio.fail_after(CALL_TIMEOUT):
            wide = await client.call_tool(
                "chat",
                {
                    "message": "long view",
                    "session_id": SID,
                    "model": BIG.name,
                    "options": {"num_ctx": 1_048_576},
                },
            )
        assert wide.is_error is not True, text_of(wide)
        history = _sent_history(fake.chat_requests[-1], "long view")
        assert len(history) == 2 * history_turns
        assert history == [(m.role, m.content) for m in stored[-2 * history_turns :]]
        assert wide.structured_content["history_messages"] == 2 * history_turns  # type: ignore[index]
        assert text_of(wide) == f"You said: long view. I have seen {2 * history_turns} earlier messages."
        with anyio.fail_after(CALL_TIMEOUT):
            tools = await client.list_tools()
        assert tools.tools
    info, messages = snapshot(settings.db_path)
    assert info is not None and info.turn_count == turns + 2
    assert len(messages) == 2 * (turns + 2)
