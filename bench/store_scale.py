"""Does a store of 20,000 turns slow a chat? The same chat against an empty store and a full one.

    python bench/store_scale.py [--db sqlite|postgres|both] [--calls N] [--sessions S] [--turns T]

Per backend, two servers in this process (the SDK's in-memory client; the loopback fake Ollama
answering "ok" at once), one on an empty store and one on a store of S sessions of T turns (default
2,000 x 10 = 20,000 turns, and a job record per turn: ``tests/store_fill.py``). Their calls
alternate, after a warm-up, in two kinds: ``chat`` in a new session, and ``chat`` continuing a
session of T turns (made in the empty store too, so both read the same history). Prints, per
kind, the p50 and mean of each and the ratio full / empty: the issue's bar is within 10 %.
PostgreSQL is the tests' server (``TEST_POSTGRES_URL``, else the local one), in two fresh
schemas dropped afterwards. Measurement only: the tests assert the work instead (every statement
a chat runs uses an index: ``tests/test_store_scale.py``), never a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_ollama import Behavior, FakeOllama  # noqa: E402
from tests.store_fill import fill  # noqa: E402

from mcp_ollama.config import Settings  # noqa: E402
from mcp_ollama.server import build_server  # noqa: E402
from mcp_ollama.store import open_store  # noqa: E402

KINDS = ("new session", "stored session")


@contextmanager
def targets(db: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """An empty store and one to fill, of backend ``db``."""
    if db == "sqlite":
        yield str(tmp / "empty.sqlite3"), str(tmp / "full.sqlite3")
        return
    from tests.postgres import fresh_schema

    with fresh_schema() as empty, fresh_schema() as full:
        yield empty, full


def settings(fake: FakeOllama, target: str) -> Settings:
    return Settings(ollama_url=fake.url, db_path=target, preload=False, max_parallel=64, connect_timeout=2.0)


async def chat(client: Client, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool("chat", arguments)
    took = time.perf_counter() - started
    assert result.is_error is not True, result
    assert result.structured_content is not None, result
    assert result.structured_content["status"] == "complete", result.structured_content
    return took


async def measure(db: str, fake: FakeOllama, calls: int, sessions: int, turns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, targets(db, Path(tmp)) as (empty, full):
        started = time.perf_counter()
        fill(full, sessions, turns)
        filled = time.perf_counter() - started
        with open_store(Settings(db_path=empty)) as store:  # the same stored session in the empty one
            for t in range(turns):
                store.append_turn("s00000", model="llama3:8b", user=f"Question {t}", assistant=f"Answer {t}")
        times: dict[tuple[str, str], list[float]] = {(k, s): [] for k in KINDS for s in ("empty", "full")}
        async with AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(Client(build_server(settings(fake, target))))
                for name, target in (("empty", empty), ("full", full))
            }
            warmup = max(10, calls // 10)
            for n in range(warmup + calls):
                for name in ("empty", "full") if n % 2 else ("full", "empty"):  # neither always first
                    for kind, arguments in zip(KINDS, ({}, {"session_id": "s00000"}), strict=True):
                        took = await chat(clients[name], {"message": f"call {n}", **arguments})
                        if n >= warmup:
                            times[(kind, name)].append(took)
    return {"filled_s": filled, "times": times}


def report(db: str, sessions: int, turns: int, found: dict[str, Any]) -> list[str]:
    stored = f"{sessions:,} sessions x {turns} turns = {sessions * turns:,} turns"
    lines = [f"{db}: {stored}, filled in {found['filled_s']:.1f} s"]
    for kind in KINDS:
        empty, full = found["times"][(kind, "empty")], found["times"][(kind, "full")]
        p50e, p50f = statistics.median(empty) * 1e3, statistics.median(full) * 1e3
        mean_e, mean_f = statistics.fmean(empty) * 1e3, statistics.fmean(full) * 1e3
        lines.append(
            f"  chat, {kind:14}  empty p50 {p50e:6.2f} ms mean {mean_e:6.2f} ms | "
            f"{sessions * turns:,} turns p50 {p50f:6.2f} ms mean {mean_f:6.2f} ms | "
            f"ratio p50 {p50f / p50e:.3f} mean {mean_f / mean_e:.3f}  ({len(full)} calls each)"
        )
    return lines


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--calls", type=int, default=300, help="measured calls per kind and store")
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args(argv)
    with FakeOllama() as fake:
        fake.default = Behavior(reply="ok")
        for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
            found = await measure(db, fake, args.calls, args.sessions, args.turns)
            print("\n".join(report(db, args.sessions, args.turns, found)), flush=True)


if __name__ == "__main__":
    anyio.run(main)
