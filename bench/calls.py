"""Rows 2-5 over SDK clients on stdio: per-call overhead, concurrency, progress, a big store.

All servers are started at once (start-up is not measured here), each variant on its own
server process; ``interleave`` calls the variants round-robin, rotating who goes first. Row
2d's peer (``npm_peer.py``) joins the per-call interleave when it is installed.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from tests.fake_ollama import Behavior

from harness import FLOOR_ARGS, OURS_ARGS, Bench, say
from mcp_ollama.store import ChatStore
from npm_peer import Peer, peer_chat

MODEL = "llama3:8b"
SHORT_REPLY = "ok"
MIB = 1024 * 1024


def _check(result: Any, what: str) -> Any:
    if result.is_error:
        text = result.content[0].text if result.content else ""
        raise RuntimeError(f"{what}: isError result: {text[:300]}")
    return result


async def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1e3


async def interleave(
    variants: dict[str, Callable[[int], Any]], n: int, start: int = 0
) -> dict[str, list[float]]:
    """Call each variant once per round, round-robin (A B C A B C ...), rotating who goes first.

    Each call gets the round number (from ``start``), which variants use for unique ids.
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(start, start + n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await _timed(lambda name=name, i=i: variants[name](i)))
    return samples


def _chat(client: Client, what: str, **arguments: Any) -> Callable[[], Any]:
    async def call() -> Any:
        return _check(await client.call_tool("chat", arguments), what)

    return call


async def bench_per_call(
    bench: Bench, floor: Client, ours_new: Client, ours_cont: Client, peer: Client | None = None
) -> dict[str, list[float]]:
    """Sequential calls, instant fake, short reply: floor vs ours (new session) vs ours (continuing).

    Each variant has its own server process, so that every process is called exactly once
    per round: a process left idle for longer between its calls pays more (cold CPU
    caches, wake-up and migration on a busy 2-core box), and sharing one process between
    two variants would hand them that advantage over the floor.
    """
    bench.fake.default = Behavior(reply=SHORT_REPLY)
    first = _check(await ours_cont.call_tool("chat", {"message": "hello"}), "ours")
    sid = first.structured_content["session_id"]
    variants = {
        "floor": lambda i: _chat(floor, "floor", message=f"hi {i}")(),
        "ours_new_session": lambda i: _chat(ours_new, "ours", message=f"hi {i}")(),
        "ours_continue": lambda i: _chat(ours_cont, "ours", message=f"hi {i}", session_id=sid)(),
    }
    if peer is not None:  # npm ollama-mcp's ollama_chat, called once per round like the others
        variants["peer_ollama_mcp"] = peer_chat(peer, MODEL)
    # Warm-up: connections pooled, code paths hot, and the continued session's history
    # filled past the 8-turn window, so every measured continuing call sends 8 turns.
    await interleave(variants, bench.cfg.warmup_calls, start=10_000)
    return await interleave(variants, bench.cfg.calls)


async def bench_concurrency(bench: Bench, floor: Client, ours: Client) -> dict[str, list[float]]:
    """One call vs N concurrent calls (distinct chat sessions, one connection), model latency 200 ms."""
    cfg = bench.cfg
    bench.fake.default = Behavior(reply=SHORT_REPLY, first_token_delay=cfg.conc_latency_s)

    def single(client: Client, name: str) -> Callable[[int], Any]:
        return lambda i: _chat(client, name, message="one", session_id=f"{name}-one-{i}")()

    def many(client: Client, name: str) -> Callable[[int], Any]:
        async def run(i: int) -> None:
            async with anyio.create_task_group() as tg:
                for k in range(cfg.conc_n):
                    tg.start_soon(_chat(client, name, message=f"c{k}", session_id=f"{name}-{i}-{k}"))

        return run

    variants = {
        "floor_1": single(floor, "floor"),
        "ours_1": single(ours, "ours"),
        f"floor_{cfg.conc_n}": many(floor, "floor"),
        f"ours_{cfg.conc_n}": many(ours, "ours"),
    }
    await interleave(variants, 1, start=10_000)  # warm-up: open enough pooled HTTP connections
    return await interleave(variants, cfg.conc_rounds)


def _first_progress_stamp() -> tuple[list[float], Callable[..., Any]]:
    """A progress callback that stamps its first invocation, and the list it stamps into."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not seen:
            seen.append(time.perf_counter())

    return seen, on_progress


async def bench_progress(bench: Bench, ours: Client) -> dict[str, list[float]]:
    """Fake's first token on the wire -> first progress notification in the client.

    Each call gets a unique first token (the key the TimedFake stamps it under); the
    progress callback stamps its first invocation with the same clock. Tokens follow 20 ms
    apart, so the first one is handled alone.
    """
    fake = bench.fake
    fake.default = Behavior(reply=SHORT_REPLY)
    deltas: list[float] = []
    totals: list[float] = []
    warmup = 5
    for i in range(warmup + bench.cfg.progress_calls):
        key = f"p{i}-{time.monotonic_ns()} "
        fake.enqueue(Behavior(tokens=[key, "b ", "c "], first_token_delay=0.01, token_delay=0.02))
        seen, on_progress = _first_progress_stamp()
        started = time.perf_counter()
        _check(
            await ours.call_tool("chat", {"message": f"progress {i}"}, progress_callback=on_progress),
            "ours",
        )
        ended = time.perf_counter()
        if not seen or key not in fake.first_token_at:
            raise RuntimeError("progress: no progress notification, or the fake did not stamp a token")
        if i >= warmup:
            deltas.append((seen[0] - fake.first_token_at.pop(key)) * 1e3)
            totals.append((ended - started) * 1e3)
    return {"first_token_to_progress_ms": deltas, "call_ms": totals}


def prefill(path: Path, sessions: Sequence[str], turns: int) -> float:
    started = time.perf_counter()
    store = ChatStore.open(path)
    try:
        for sid in sessions:
            for t in range(turns):
                store.append_turn(
                    sid,
                    model=MODEL,
                    user=f"Question {t} of session {sid}: " + "what about the lorem ipsum? " * 4,
                    assistant=f"Answer {t}: " + "the lorem ipsum is dolor sit amet. " * 8,
                    meta={"done_reason": "stop", "prompt_tokens": 120, "completion_tokens": 64},
                )
    finally:
        store.close()
    return time.perf_counter() - started


async def bench_store(
    bench: Bench, small: Client, big_same: Client, big_rotating: Client, n_sessions: int
) -> dict[str, list[float]]:
    """Continue a 20-turn session: store holding only it vs a store of 1,000 such sessions.

    Three server processes on three database files (the two big ones are copies of one
    pre-filled file; sharing a file between processes would make each commit invalidate
    the other's page cache, which is not what is measured here).
    """
    bench.fake.default = Behavior(reply=SHORT_REPLY)
    mid = f"s{n_sessions // 2:04d}"
    variants = {
        "one_session_store": lambda i: _chat(small, "small", message=f"go on {i}", session_id="s0000")(),
        "big_store_same_session": lambda i: _chat(big_same, "big", message=f"go on {i}", session_id=mid)(),
        "big_store_rotating": lambda i: _chat(
            big_rotating, "big", message=f"go on {i}", session_id=f"s{(i * 7919) % n_sessions:04d}"
        )(),
    }
    await interleave(variants, bench.cfg.warmup_calls, start=10_000)
    return await interleave(variants, bench.cfg.store_calls)


async def bench_async(bench: Bench, peer: Peer | None) -> dict[str, Any]:
    cfg = bench.cfg
    tmp = bench.tmp
    names = [f"s{i:04d}" for i in range(cfg.store_sessions)]
    big_db, small_db = tmp / "big.sqlite3", tmp / "small.sqlite3"
    prefill_s = prefill(big_db, names, cfg.store_turns)
    prefill(small_db, names[:1], cfg.store_turns)
    big_copy = tmp / "big-copy.sqlite3"
    shutil.copyfile(big_db, big_copy)  # closed cleanly: no -wal file left to copy

    servers: dict[str, tuple[list[str], Path] | tuple[list[str], Path, str]] = {
        "floor": (FLOOR_ARGS, tmp / "floor.sqlite3"),
        "ours-new": (OURS_ARGS, tmp / "ours-new.sqlite3"),
        "ours-cont": (OURS_ARGS, tmp / "ours-cont.sqlite3"),
        "store-small": (OURS_ARGS, small_db),
        "store-big-same": (OURS_ARGS, big_db),
        "store-big-rotating": (OURS_ARGS, big_copy),
    }
    if peer is not None:
        servers["peer"] = (peer.args, tmp / "peer.unused", peer.command)
    clients: dict[str, Client] = {}
    async with AsyncExitStack() as stack:
        # Start the servers concurrently (start-up is not measured here), close them
        # concurrently too: each client lives in its own task, as anyio's scopes require.
        ready = {name: anyio.Event() for name in servers}
        stop = anyio.Event()
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(stop.set)

        async def hold(name: str, args: list[str], db: Path, command: str = sys.executable) -> None:
            async with bench.client(name, args, db, command=command) as client:
                clients[name] = client
                ready[name].set()
                await stop.wait()

        for name, spec in servers.items():
            tg.start_soon(hold, name, *spec)
        with anyio.fail_after(90):
            for event in ready.values():
                await event.wait()

        say("per-call overhead")
        per_call = await bench_per_call(
            bench, clients["floor"], clients["ours-new"], clients["ours-cont"], clients.get("peer")
        )
        say("concurrency")
        conc = await bench_concurrency(bench, clients["floor"], clients["ours-new"])
        say("first token -> progress")
        prog = await bench_progress(bench, clients["ours-new"])
        say("big store")
        store = await bench_store(
            bench,
            clients["store-small"],
            clients["store-big-same"],
            clients["store-big-rotating"],
            cfg.store_sessions,
        )
        say("closing servers")
    return {
        "per_call": per_call,
        "concurrency": conc,
        "progress": prog,
        "store": store,
        "store_prefill_s": prefill_s,
        "store_db_mib": big_db.stat().st_size / MIB,
    }
