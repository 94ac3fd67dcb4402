"""Durability and concurrency of the session store, through the real server subprocess.

- SIGKILL at random moments during chats, many times over, with several processes sharing
  one database file: afterwards the file is intact, every turn whose answer reached the
  client is stored exactly, and no session holds half a turn.
- Fifty concurrent calls on one session are serialised into fifty whole turns, each answer
  with its own question; fifty calls on fifty sessions really run at the same time.
- SIGTERM or stdin EOF with a turn in flight closes the database cleanly and stores nothing
  of that turn (test_server_stdio.py checks the exit itself).

Nothing here asserts how long anything takes: loops run until they have counted what they
need, and the only clocks are hang guards that fail with a clear message.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import re
import signal
import sqlite3
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from mcp_ollama.config import Settings
from mcp_ollama.store import ChatStore

from .fake_ollama import Behavior, FakeOllama
from .rawstdio import HANDSHAKE_VERSION, RawServer

KILLS = 50
"""SIGKILLs the crash loop delivers, at least; it also runs until at least as many turns were
answered before a kill."""
WORKERS = 3
"""Server processes alive at once in the crash loop, each with sessions of its own, one database."""
SESSIONS_PER_WORKER = 3
HANG_GUARD = 600.0
"""Seconds after which a loop or wait counts as hung (the crash loop takes 15-60 s, a busy
machine only slows it down): a guard against hangs, never a performance budget."""

ECHO = re.compile(r"You said: (?P<message>.*)\. I have seen (?P<seen>\d+) earlier messages\.", re.DOTALL)


def raw_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "OLLAMA_HOST": settings.ollama_url,
        "MCP_OLLAMA_DB": settings.db_path,
        "MCP_OLLAMA_LOG_LEVEL": "WARNING",
        "MCP_OLLAMA_PRELOAD": "off",
        "MCP_OLLAMA_MAX_PARALLEL": "64",  # the fake serves any number at once
        "HOME": os.environ["HOME"],
        **extra,
    }


def chat_request(request_id: int, message: str, session_id: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"message": message, "session_id": session_id}},
    }


def integrity(db_path: str) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def stored_turns(db_path: str) -> dict[str, list[tuple[str, str]]]:
    """Every session's turns as (user, assistant) pairs, after checking the rows form whole turns."""
    conn = sqlite3.connect(db_path)
    try:
        sessions = dict(conn.execute("SELECT id, turn_count FROM sessions").fetchall())
        rows = conn.execute("SELECT session_id, turn, role, content FROM messages ORDER BY id").fetchall()
    finally:
        conn.close()
    by_session: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for session_id, turn, role, content in rows:
        assert session_id in sessions, f"message of a missing session {session_id!r}"
        by_session[session_id].append((turn, role, content))
    turns: dict[str, list[tuple[str, str]]] = {}
    for session_id, turn_count in sessions.items():
        messages = by_session.get(session_id, [])
        roles = [role for _, role, _ in messages]
        assert roles == ["user", "assistant"] * (len(messages) // 2) and len(messages) % 2 == 0, (
            f"session {session_id} does not alternate user/assistant: {roles}"
        )
        numbers = [turn for turn, _, _ in messages]
        expected_numbers = [n for n in range(1, len(messages) // 2 + 1) for _ in range(2)]
        assert numbers == expected_numbers, f"session {session_id} turn numbers {numbers}"
        assert turn_count == len(messages) // 2
        turns[session_id] = [(messages[i][2], messages[i + 1][2]) for i in range(0, len(messages), 2)]
    # ChatStore, the server's own reader, agrees.
    with ChatStore.open(db_path) as store:
        for session_id, pairs in turns.items():
            read = [(m.role, m.content) for m in store.messages(session_id)]
            assert read == [item for u, a in pairs for item in (("user", u), ("assistant", a))]
    return turns


def handshake(server: RawServer) -> None:
    """``server.initialize()``, however slowly a busy machine starts the server."""
    server.request(
        "initialize",
        {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
        timeout=HANG_GUARD,
    )
    server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


# ---------------------------------------------------------------------------- SIGKILL loop


@dataclass
class CrashLog:
    """What the crash loop's workers saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    kills: int = 0
    kills_during_startup: int = 0
    processes: int = 0
    answered: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    """Per session, the (message, answer) of every turn whose answer reached the client, in order."""
    sent: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Per session, every message sent, answered or not."""
    failures: list[str] = field(default_factory=list)


def _chat_until_killed(
    server: RawServer, sessions: list[str], tag: str, log: CrashLog, rng: random.Random
) -> bool:
    """Chat back to back on every session (one call in flight each) until a random moment,
    then SIGKILL the server. False if an answer was wrong (recorded in ``log.failures``)."""
    kill_at = time.monotonic() + rng.uniform(0.05, 0.6)
    pending: dict[int, tuple[str, str]] = {}
    numbers = itertools.count()

    def send_next(session_id: str) -> None:
        filler = " ".join(rng.choice(("lorem", "ipsum", "dolor", "sit", "amet")) for _ in range(8))
        message = f"{tag} n{next(numbers)} {filler}"
        request_id = server.next_id()
        pending[request_id] = (session_id, message)
        with log.lock:
            log.sent[session_id].add(message)
        server.send(chat_request(request_id, message, session_id))

    for session_id in sessions:
        send_next(session_id)
    while (left := kill_at - time.monotonic()) > 0:
        try:
            line = server.lines.get(timeout=left)
        except queue.Empty:
            break
        message = json.loads(line)
        if "method" in message or message.get("id") not in pending:
            continue
        session_id, text = pending.pop(message["id"])
        result = message.get("result") or {}
        data = result.get("structuredContent") or {}
        if (
            result.get("isError") is not False
            or data.get("session_id") != session_id
            # The text is the answer (a new session's first turn adds a note after it).
            or not result["content"][0]["text"].startswith(str(data.get("answer")))
        ):
            with log.lock:
                log.failures.append(f"{session_id} {text!r}: {message}")
            return False
        with log.lock:
            log.answered[session_id].append((text, data["answer"]))
        send_next(session_id)
    server.proc.send_signal(signal.SIGKILL)
    server.wait(HANG_GUARD)
    return True


def _answered_total(log: CrashLog) -> int:
    """Turns answered before a kill, all sessions together; call with ``log.lock`` held."""
    return sum(len(turns) for turns in log.answered.values())


def _crash_worker(worker: int, settings: Settings, log: CrashLog, deadline: float, seed: int) -> None:
    """Spawn, chat, SIGKILL, over and over, until the loop has its kills and its answered turns
    (counted, however long that takes), a failure, or the hang guard's deadline."""
    rng = random.Random(seed)
    sessions = [f"w{worker}-s{j}" for j in range(SESSIONS_PER_WORKER)]
    for generation in itertools.count():
        with log.lock:
            if log.failures or (log.kills >= KILLS and _answered_total(log) >= KILLS):
                return
            if time.monotonic() > deadline:
                log.failures.append(f"worker {worker}: hang guard: still going after {HANG_GUARD:.0f} s")
                return
            log.processes += 1
        server = RawServer(raw_env(settings))
        try:
            if rng.random() < 0.15:
                # Killed while starting: importing, opening the database, migrating, handshaking.
                time.sleep(rng.uniform(0.0, 0.5))
                server.proc.send_signal(signal.SIGKILL)
                server.wait(HANG_GUARD)
                with log.lock:
                    log.kills += 1
                    log.kills_during_startup += 1
                continue
            handshake(server)
            if not _chat_until_killed(server, sessions, f"w{worker} g{generation}", log, rng):
                return
            with log.lock:
                log.kills += 1
        except Exception as exc:  # surfaced through log.failures, checked by the test
            with log.lock:
                log.failures.append(f"worker {worker}: {type(exc).__name__}: {exc}")
            return
        finally:
            server.stop()


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_an_answered_turn_or_stores_half_a_turn(
    settings: Settings, fake: FakeOllama
) -> None:
    rng = random.Random(20240523)
    # Small random pauses between tokens, so kills land before, during and after streams.
    fake.enqueue(*(Behavior(token_delay=rng.choice((0.0, 0.002, 0.005, 0.01))) for _ in range(20_000)))
    log = CrashLog()
    started = time.monotonic()
    # The loop runs until it has counted its kills and answered turns; the deadline only
    # catches a hang (a worker then records a failure and stops).
    deadline = started + HANG_GUARD
    workers = [
        threading.Thread(target=_crash_worker, args=(w, settings, log, deadline, rng.randrange(2**32)))
        for w in range(WORKERS)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()) + 2 * HANG_GUARD)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in workers), (
        f"hang guard: a crash worker is stuck after {elapsed:.0f} s"
    )
    assert log.failures == []
    assert log.kills >= KILLS, f"the loop stopped after {log.kills} of {KILLS} kills"
    answered_total = _answered_total(log)
    assert answered_total >= KILLS, "most processes must get some turns answered before their kill"

    assert integrity(settings.db_path) == "ok"
    turns = stored_turns(settings.db_path)
    unanswered_but_stored = 0
    for session_id, answered in log.answered.items():
        stored = turns.get(session_id, [])
        answered_messages = {message for message, _ in answered}
        # Every answered turn is there, with its exact answer, in the order the client saw them.
        assert [turn for turn in stored if turn[0] in answered_messages] == answered
    for session_id, stored in turns.items():
        assert re.fullmatch(r"w\d+-s\d+", session_id)
        seen = [user for user, _ in stored]
        assert len(seen) == len(set(seen)), f"a turn stored twice in {session_id}"
        for user, assistant in stored:
            # A turn stored but never answered: the kill came between the commit and the response.
            assert user in log.sent[session_id], f"{session_id} holds a message nobody sent: {user!r}"
            match = ECHO.fullmatch(assistant)
            assert match is not None and match["message"] == user
            unanswered_but_stored += (user, assistant) not in log.answered[session_id]

    # A fresh server opens the crashed database and carries on every session.
    with RawServer(raw_env(settings)) as server:
        handshake(server)
        for session_id in turns:
            reply = server.request(
                "tools/call",
                {"name": "chat", "arguments": {"message": "after the storm", "session_id": session_id}},
                timeout=HANG_GUARD,
            )
            assert reply["result"]["isError"] is False
        server.close_stdin()
        assert server.wait(HANG_GUARD) == 0
    assert integrity(settings.db_path) == "ok"
    after = stored_turns(settings.db_path)
    assert all(after[s][:-1] == turns[s] and after[s][-1][0] == "after the storm" for s in turns)
    print(
        f"{log.kills} kills ({log.kills_during_startup} during start-up) over {log.processes} processes "
        f"in {elapsed:.1f} s; {answered_total} answered turns, {unanswered_but_stored} stored unanswered"
    )


# ---------------------------------------------------------------------------- concurrency


def _collect(server: RawServer, ids: set[int]) -> dict[int, dict[str, Any]]:
    """The responses to ``ids``, each exactly once (``HANG_GUARD`` seconds at most)."""
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + HANG_GUARD
    while len(answers) < len(ids):
        left = deadline - time.monotonic()
        assert left > 0, f"hang guard: {len(ids) - len(answers)} calls unanswered after {HANG_GUARD:.0f} s"
        try:
            line = server.lines.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        message = json.loads(line)
        if "method" in message:
            continue
        assert message["id"] in ids and message["id"] not in answers, f"unexpected response {message}"
        answers[message["id"]] = message
    return answers


def test_fifty_concurrent_calls_on_one_session_make_fifty_whole_turns_each_with_its_own_answer(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.default = Behavior(token_delay=0.002)
    sid = "one-busy-session"
    with RawServer(raw_env(settings)) as server:
        handshake(server)
        questions: dict[int, str] = {}
        for i in range(50):
            request_id = server.next_id()
            questions[request_id] = f"question number {i}"
            server.send(chat_request(request_id, questions[request_id], sid))
        answers = _collect(server, set(questions))
        assert server.proc.poll() is None
    for request_id, response in answers.items():
        result = response["result"]
        assert result["isError"] is False, result
        assert result["structuredContent"]["session_id"] == sid
        match = ECHO.fullmatch(result["structuredContent"]["answer"])
        assert match is not None and match["message"] == questions[request_id], "each call its own answer"
    assert integrity(settings.db_path) == "ok"
    turns = stored_turns(settings.db_path)[sid]
    assert len(turns) == 50  # 100 messages, strictly user/assistant
    by_question = {questions[i]: r["result"]["structuredContent"]["answer"] for i, r in answers.items()}
    assert dict(turns) == by_question, "every stored answer follows its own question"
    # Serialised: each turn saw every turn before it (up to the 8-turn history window).
    seen = [int(ECHO.fullmatch(answer)["seen"]) for _, answer in turns]  # type: ignore[index]
    assert seen == [min(2 * n, 16) for n in range(50)]


def test_fifty_calls_on_fifty_sessions_run_in_parallel(settings: Settings, fake: FakeOllama) -> None:
    # Every call waits at the model load until all fifty are in Ollama at once: counted, not timed.
    fake.load_delay = HANG_GUARD
    with RawServer(raw_env(settings)) as server:
        handshake(server)
        sessions: dict[int, str] = {}
        for i in range(50):
            request_id = server.next_id()
            sessions[request_id] = f"parallel-{i}"
            server.send(chat_request(request_id, f"hello from {i}", sessions[request_id]))
        all_at_once = fake.wait_for_active(50, timeout=HANG_GUARD)
        most_active = fake.active_streams
        fake.load_delay = 0.0  # the load ends now, and every call goes on
        assert all_at_once, f"only {most_active} of 50 calls on different sessions reached Ollama at once"
        answers = _collect(server, set(sessions))
    for request_id, response in answers.items():
        assert response["result"]["isError"] is False
        assert response["result"]["structuredContent"]["session_id"] == sessions[request_id]
    turns = stored_turns(settings.db_path)
    assert sorted(turns) == sorted(sessions.values())
    assert all(len(pairs) == 1 for pairs in turns.values())


# ---------------------------------------------------------------------------- graceful shutdown


@pytest.mark.parametrize("how", ["sigterm", "eof"])
def test_shutdown_with_a_turn_in_flight_closes_the_database_and_stores_nothing_of_it(
    settings: Settings, fake: FakeOllama, how: str
) -> None:
    with ChatStore.open(settings.db_path) as store:
        store.append_turn("steady", model="llama3:8b", user="before", assistant="answer before")
    fake.enqueue(Behavior(token_count=1_000_000, token_delay=0.05))  # never ends by itself
    with RawServer(raw_env(settings)) as server:
        handshake(server)
        server.send(chat_request(99, "in flight when we stop", "steady"))
        assert fake.wait_for_active(timeout=HANG_GUARD)
        if how == "sigterm":
            server.terminate()
        else:
            server.close_stdin()
        assert server.wait(HANG_GUARD) == 0
        assert fake.wait_for_hangup(HANG_GUARD)
        answers = [json.loads(line) for line in server.stdout_raw]
    for answer in answers:
        if answer.get("id") == 99:  # the SDK answers "Connection closed"; never a result
            assert "error" in answer and "result" not in answer
    # The lifespan closed the store: SQLite checkpointed and removed the write-ahead log.
    assert not os.path.exists(settings.db_path + "-wal")
    assert integrity(settings.db_path) == "ok"
    assert stored_turns(settings.db_path) == {"steady": [("before", "answer before")]}
