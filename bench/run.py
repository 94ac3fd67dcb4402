"""Performance bench for mcp-ollama against a floor server, all against one loopback fake Ollama.

    python bench/run.py [--quick] [--at REV] [--out FILE] [--keep] [--no-peer] [--no-peer-install]
                        [--http-only | --no-http]

Writes ``bench/results/latest.json`` (committed; ``--quick``: ``bench/results/quick.json``,
git-ignored). ``--at REV`` measures that commit's ``src/`` and ``tests/`` (``git archive``
into a temporary directory, see ``bench/snapshot.py``) instead of the work tree. Row 2d
needs npm ``ollama-mcp@2.1.0`` in ``bench/.node`` (git-ignored); it is npm-installed there
on first use unless ``--no-peer-install``.

Targets (each printed with the target, the measurement, a verdict, and the size of any miss):

1. Cold start, spawn to the ``initialize`` answer: ``python -m mcp_ollama`` within 10% of the
   floor (``bench/floor_server.py``: a bare ``MCPServer`` with one tool making one httpx POST).
   Raw ``subprocess`` + pipes: write the initialize line at once, time until the answer line.
2. Per-call overhead of ``chat`` with an instant fake: p50 within 1 ms of the floor, over
   sequential calls on one stdio connection each (SDK ``Client``, legacy handshake).
3. 16 concurrent ``chat`` calls on 16 chat sessions (one connection) with a 200 ms model
   latency: wall time under 1.3x one call.
4. Fake's first token written to the client's first progress notification: p50 under 10 ms.
5. ``chat`` continuing a session in a 1,000 sessions x 20 turns store vs a store holding only
   that session: within 10%.
6. Idle RSS after ``initialize``: ours within 10 MiB of the floor.

Rows 2c, 2d, 7, 8 (``bench/scenarios.py`` describes their method):

2c. The row-2 calls as a ratio: ours' p50 within 1.15x the floor's; p99 reported.
2d. npm ``ollama-mcp`` 2.1.0 (TypeScript, ``ollama_chat``) in the same interleave: ours' p99
    at most the peer's.
7.  A 12 s answer through a client with a 3 s per-request limit, our answer deadline 2.5 s:
    ``chat`` then ``chat_result`` until complete delivers 100% of the answer (7b: the
    baseline with the deadline off, where the host times out and gets nothing).
8.  First chat after start with a 5 s model load, once the preload is done: within 1.2x a
    warm chat (8b: the first chat made right after ``initialize``, for information).

Rows 9, 9b, 9c, 10 (``bench/http_scenarios.py`` describes their method; about 55 s, in the default
run; ``--http-only`` runs only them and writes ``bench/results/http.json``, ``--no-http`` skips them):

9.  50 SDK clients at once over streamable HTTP, each making sequential ``chat`` calls, a new
    chat session each: ``mcp-ollama serve --http`` (loopback, no tokens file) against an HTTP
    floor (``bench/floor_http_server.py``): ours' p50 within 1.15x the floor's.
9b. Their throughput and the server process's CPU time per chat (info).
9c. The same with each client continuing its own session; notifications received per chat (info).
10. Chats/s with two Ollama hosts vs one, each host answering one 200 ms chat at a time, 8
    clients: at least 1.8x.

Method: every comparison interleaves its variants call by call (A B C A B C ...; the cold
starts alternate AB / BA), so drift on this noisy 2-core machine hits all variants alike,
and each compared variant has its own server process, called once per round (a process
that idles longer between calls pays more, so sharing one would favour it). Everything
talks to ONE ``FakeOllama`` (tests/fake_ollama.py) running in a thread of this process.
Server stderr goes to log files in a temporary directory, removed at the end (``--keep``
keeps it). Exit status: 0 when every target passes, 1 when any is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import snapshot  # noqa: E402

if __name__ == "__main__":
    snapshot.reexec_if_asked(__file__)
sys.path.insert(0, str(snapshot.CODE))

from tests.fake_ollama import Behavior, FakeOllama  # noqa: E402

import http_scenarios  # noqa: E402
import scenarios  # noqa: E402
from mcp_ollama.store import ChatStore  # noqa: E402

FLOOR_SCRIPT = REPO / "bench" / "floor_server.py"
OURS_ARGS = ["-m", "mcp_ollama"]
FLOOR_ARGS = [str(FLOOR_SCRIPT)]
HANDSHAKE_VERSION = "2025-11-25"
MODEL = "llama3:8b"
SHORT_REPLY = "ok"
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Config:
    cold_pairs: int
    cold_settle_s: float
    calls: int
    warmup_calls: int
    conc_rounds: int
    conc_n: int
    conc_latency_s: float
    progress_calls: int
    store_sessions: int
    store_turns: int
    store_calls: int
    long_reps: int
    long_tokens: int
    long_token_delay: float
    host_timeout_s: float
    answer_deadline_s: float
    load_delay_s: float
    load_reps: int
    load_warm_calls: int
    http_clients: int = 50
    http_calls: int = 8
    http_warmup_calls: int = 2
    http_rounds: int = 2
    hosts_clients: int = 8
    hosts_calls: int = 4
    hosts_latency_s: float = 0.2
    hosts_rounds: int = 2


DEFAULT = Config(
    cold_pairs=30,
    cold_settle_s=0.3,
    calls=300,
    warmup_calls=20,
    conc_rounds=15,
    conc_n=16,
    conc_latency_s=0.2,
    progress_calls=200,
    store_sessions=1000,
    store_turns=20,
    store_calls=300,
    long_reps=3,
    long_tokens=240,
    long_token_delay=0.05,
    host_timeout_s=3.0,
    answer_deadline_s=2.5,
    load_delay_s=5.0,
    load_reps=3,
    load_warm_calls=5,
)
QUICK = dataclasses.replace(
    DEFAULT,
    cold_pairs=4,
    cold_settle_s=0.2,
    calls=80,
    warmup_calls=12,
    conc_rounds=4,
    progress_calls=30,
    store_calls=80,
    long_reps=1,
    load_reps=1,
    load_warm_calls=3,
    http_calls=5,
    http_rounds=1,
    hosts_calls=3,
    hosts_rounds=1,
)


# --------------------------------------------------------------------------- statistics


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def paired(a: Sequence[float], b: Sequence[float], op: Callable[[float, float], float]) -> float:
    """Median of op(a[i], b[i]): samples taken in the same interleaved round, so drift cancels."""
    return pct([op(x, y) for x, y in zip(a, b, strict=True)], 50)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


# --------------------------------------------------------------------------- the fake


class TimedFake(FakeOllama):
    """FakeOllama that timestamps when it has written a stream's first token.

    FakeOllama records requests but not write times, so this wraps the connection's
    ``write`` for the duration of one streamed answer: the first write of ``_answer_stream``
    is the response head plus the first token line, and the timestamp is taken once
    ``writer.drain()`` has handed it to the kernel. ``time.perf_counter`` is CLOCK_MONOTONIC,
    the same clock in the fake's thread and in the bench's event loop. Answers are keyed by
    their first token, which the bench makes unique per call.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_token_at: dict[str, float] = {}

    async def _answer_stream(self, conn: Any, answer: Any, watcher: Any) -> bool:
        key = answer.tokens[0] if answer.tokens else None
        original = conn.write
        stamps = self.first_token_at

        async def write(data: bytes) -> None:
            await original(data)
            if key is not None and key not in stamps:
                stamps[key] = time.perf_counter()

        conn.write = write
        try:
            return await super()._answer_stream(conn, answer, watcher)
        finally:
            conn.__dict__.pop("write", None)


# --------------------------------------------------------------------------- servers


@dataclasses.dataclass
class Bench:
    cfg: Config
    tmp: Path
    fake: TimedFake
    procs: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    ours_args: list[str] = dataclasses.field(default_factory=lambda: list(OURS_ARGS))

    def env(self, db: Path, url: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a server process (ours, the floor and the peer get the same)."""
        return {
            # The fake serves any number of chats at once; measure the server, not a slot limit.
            "MCP_OLLAMA_MAX_PARALLEL": "64",
            **(extra or {}),
            "OLLAMA_HOST": url or self.fake.url,
            "MCP_OLLAMA_DB": str(db),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            "XDG_DATA_HOME": str(self.home / "data"),
        }

    def log(self, name: str) -> Path:
        return self.tmp / "logs" / f"{name}.stderr.log"

    @asynccontextmanager
    async def client(
        self,
        name: str,
        args: list[str],
        db: Path,
        *,
        command: str = sys.executable,
        url: str | None = None,
        extra_env: dict[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[Client]:
        """An SDK client over stdio, handshake era, the server's stderr to a log file.

        ``Client(StdioServerParameters(...))`` runs exactly ``stdio_client(params)`` but with
        the child's stderr on our terminal; passing the same transport with ``errlog`` set is
        the only difference. ``read_timeout``: the client's per-request limit
        (``Client(read_timeout_seconds=...)``, a hard limit that progress does not reset).
        """
        params = StdioServerParameters(command=command, args=args, env=self.env(db, url, extra_env))
        with self.log(name).open("a") as errlog:
            async with Client(
                stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=read_timeout
            ) as client:
                yield client


# --------------------------------------------------------------------------- 1 + 6: cold start, RSS


def _initialize_line() -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
    return json.dumps(message).encode() + b"\n"


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from a pipe fd, or TimeoutError/EOFError. Reads byte-wise after select."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer line from the server")
            if not sel.select(remaining):
                continue
            data = os.read(fd, 65536)
            if not data:
                raise EOFError(f"server closed stdout; got {bytes(buf)[:200]!r}")
            buf += data
            if b"\n" in buf:
                return bytes(buf[: buf.index(b"\n")])


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB from /proc/PID/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cold_start_once(bench: Bench, name: str, args: list[str], db: Path) -> dict[str, float]:
    """Spawn, send initialize at once, time the answer; then idle RSS and exit-on-EOF time."""
    init = _initialize_line()
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n"
    with bench.log(name).open("a") as errlog:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=bench.env(db),
            cwd=str(bench.tmp),
        )
    bench.procs.append(proc)
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(init)
        proc.stdin.flush()
        line = _read_line(proc.stdout.fileno(), 30.0)
        answered = time.perf_counter()
        reply = json.loads(line)
        if reply.get("id") != 1 or "result" not in reply:
            raise RuntimeError(f"{name}: unexpected initialize answer {line[:300]!r}")
        proc.stdin.write(initialized)
        proc.stdin.flush()
        time.sleep(bench.cfg.cold_settle_s)
        rss, hwm = _rss_kib(proc.pid)
        closed = time.perf_counter()
        proc.stdin.close()
        code = proc.wait(10)
        exited = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"{name}: exited {code} after stdin EOF (see {bench.log(name)})")
    finally:
        _reap(proc)
        bench.procs.remove(proc)
    return {
        "init_ms": (answered - started) * 1e3,
        "rss_mib": rss / 1024,
        "hwm_mib": hwm / 1024,
        "exit_ms": (exited - closed) * 1e3,
    }


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            with contextlib.suppress(OSError):
                stream.close()


def bench_cold_start(bench: Bench) -> dict[str, dict[str, list[float]]]:
    variants = {
        "floor": (FLOOR_ARGS, bench.tmp / "cold-floor.sqlite3"),
        "ours": (OURS_ARGS, bench.tmp / "cold-ours.sqlite3"),
    }
    # One unmeasured spawn each: page cache, .pyc files, and ours creates its database.
    for name, (args, db) in variants.items():
        cold_start_once(bench, f"cold-{name}", args, db)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    order = list(variants)
    for i in range(bench.cfg.cold_pairs):
        for name in order if i % 2 == 0 else order[::-1]:  # AB BA AB ...
            args, db = variants[name]
            for key, value in cold_start_once(bench, f"cold-{name}", args, db).items():
                samples[name].setdefault(key, []).append(value)
    return samples


# --------------------------------------------------------------------------- 2-5: over the SDK client


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
        variants["peer_ollama_mcp"] = scenarios.peer_chat(peer, MODEL)
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


async def bench_async(bench: Bench, peer: scenarios.Peer | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import mcp_ollama

    return {
        "code": snapshot.code_under_test(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "mcp_sdk": _version("mcp"),
        "httpx": _version("httpx"),
        "mcp_ollama": mcp_ollama.__version__,
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def verdict(ok: bool, miss: str) -> str:
    return "PASS" if ok else f"MISS by {miss}"


def evaluate(
    cold: dict[str, Any], res: dict[str, Any], cfg: Config, scen: dict[str, Any], peer: Any
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(
        tid: str, metric: str, floor: str, ours: str, target: str, ok: bool | None, miss: str, **data: Any
    ):
        text = "info" if ok is None else verdict(ok, miss)
        if ok is None and miss:
            text = f"info ({miss})"
        rows.append(
            {
                "id": tid,
                "metric": metric,
                "reference": floor,
                "ours": ours,
                "target": target,
                "pass": ok,
                "verdict": text,
                **data,
            }
        )

    # 1. cold start
    f, o = pct(cold["floor"]["init_ms"], 50), pct(cold["ours"]["init_ms"], 50)
    limit = f * 1.10
    row(
        "1",
        "cold start: spawn -> initialize answer (median)",
        f"floor {f:.0f} ms",
        f"{o:.0f} ms ({(o / f - 1) * 100:+.1f}%)",
        "<= floor +10%",
        o <= limit,
        f"{o - limit:.0f} ms = {(o / f - 1.10) * 100:.1f} pts (limit {limit:.0f} ms)",
        floor_ms=f,
        ours_ms=o,
        floor_stats=summary(cold["floor"]["init_ms"]),
        ours_stats=summary(cold["ours"]["init_ms"]),
    )
    fm, om = min(cold["floor"]["init_ms"]), min(cold["ours"]["init_ms"])
    ratio = paired(cold["ours"]["init_ms"], cold["floor"]["init_ms"], lambda x, y: x / y)
    best = f"{om:.0f} ms ({(om / fm - 1) * 100:+.1f}%); paired ratio {ratio:.2f}x"
    row("1b", "cold start: best of runs; median paired ratio", f"floor {fm:.0f} ms", best, "", None, "")
    fe, oe = pct(cold["floor"]["exit_ms"], 50), pct(cold["ours"]["exit_ms"], 50)
    row("1c", "exit after stdin EOF (median)", f"floor {fe:.0f} ms", f"{oe:.0f} ms", "", None, "")

    # 2. per-call overhead
    pc = res["per_call"]
    fp50, fp99 = pct(pc["floor"], 50), pct(pc["floor"], 99)
    for name, label, judged in (
        ("ours_new_session", "per call, new session each call", True),
        ("ours_continue", "per call, continuing one session (8-turn window)", False),
    ):
        p50, p99 = pct(pc[name], 50), pct(pc[name], 99)
        delta = p50 - fp50
        pdelta = paired(pc[name], pc["floor"], lambda x, y: x - y)
        row(
            "2" if judged else "2b",
            f"{label}: p50 / p99 over {len(pc[name])} calls",
            f"floor {fp50:.2f} / {fp99:.2f} ms",
            f"{p50:.2f} / {p99:.2f} ms (p50 {delta:+.2f}, paired {pdelta:+.2f} ms)",
            "p50 <= floor +1 ms",
            (delta <= 1.0) if judged else None,
            f"{delta - 1.0:.2f} ms (p50 {delta:.2f} ms over the floor)"
            if judged
            else f"{'within' if delta <= 1.0 else 'over'} the 1 ms target by {abs(delta - 1.0):.2f} ms",
            paired_delta_ms=pdelta,
            floor_stats=summary(pc["floor"]),
            ours_stats=summary(pc[name]),
        )

    # 2c. the same calls as a ratio to the floor (goal <= 1.15x), and the tail
    ours = pc["ours_new_session"]
    p50r = pct(ours, 50) / fp50
    pr = paired(ours, pc["floor"], lambda x, y: x / y)
    p99r = pct(ours, 99) / fp99
    row(
        "2c",
        "chat (new session) / floor: p50 ratio; p99 ratio",
        f"floor p50 {fp50:.2f}, p99 {fp99:.2f} ms",
        f"p50 {p50r:.2f}x (paired {pr:.2f}x); p99 {pct(ours, 99):.2f} ms = {p99r:.2f}x",
        "p50 <= 1.15x floor",
        p50r <= 1.15,
        f"{p50r - 1.15:.2f}x ({pct(ours, 50) - 1.15 * fp50:.2f} ms over 1.15x)",
        p50_ratio=p50r,
        paired_ratio=pr,
        p99_ratio=p99r,
    )

    # 2d. the TypeScript peer, npm ollama-mcp (ollama_chat), in the same interleave
    if "peer_ollama_mcp" in pc:
        pe = pc["peer_ollama_mcp"]
        op99, pp99 = pct(ours, 99), pct(pe, 99)
        row(
            "2d",
            f"chat p50 / p99 vs npm ollama-mcp {peer.version} ollama_chat ({len(pe)} calls)",
            f"peer {pct(pe, 50):.2f} / {pp99:.2f} ms",
            f"{pct(ours, 50):.2f} / {op99:.2f} ms (p99 {op99 / pp99:.2f}x the peer's)",
            "p99 <= peer p99",
            op99 <= pp99,
            f"{op99 - pp99:.2f} ms",
            peer_stats=summary(pe),
            ours_stats=summary(ours),
        )
    else:
        row("2d", "chat p99 vs npm ollama-mcp", "not run", str(peer), "p99 <= peer p99", None, "")

    # 3. concurrency
    cc = res["concurrency"]
    n = cfg.conc_n
    o1, on = pct(cc["ours_1"], 50), pct(cc[f"ours_{n}"], 50)
    f1, fn = pct(cc["floor_1"], 50), pct(cc[f"floor_{n}"], 50)
    ratio = on / o1
    row(
        "3",
        f"{n} concurrent calls ({n} sessions) / 1 call, {cfg.conc_latency_s * 1e3:.0f} ms model (medians)",
        f"floor {fn:.0f}/{f1:.0f} ms = {fn / f1:.2f}x",
        f"{on:.0f}/{o1:.0f} ms = {ratio:.2f}x",
        "< 1.3x",
        ratio < 1.3,
        f"{ratio - 1.3:.2f}x ({on - 1.3 * o1:.0f} ms over)",
        ours_1=summary(cc["ours_1"]),
        ours_n=summary(cc[f"ours_{n}"]),
        floor_1=summary(cc["floor_1"]),
        floor_n=summary(cc[f"floor_{n}"]),
    )

    # 4. progress latency
    pg = res["progress"]["first_token_to_progress_ms"]
    p50, p99 = pct(pg, 50), pct(pg, 99)
    row(
        "4",
        f"fake's first token -> client progress, p50 / p99 ({len(pg)} calls)",
        "-",
        f"{p50:.2f} / {p99:.2f} ms",
        "p50 < 10 ms",
        p50 < 10.0,
        f"{p50 - 10.0:.2f} ms",
        ours_stats=summary(pg),
    )

    # 5. big store
    st = res["store"]
    base = pct(st["one_session_store"], 50)
    for key, label, tid in (
        ("big_store_same_session", "same session", "5"),
        ("big_store_rotating", "a different session each call", "5b"),
    ):
        v = pct(st[key], 50)
        row(
            tid,
            f"chat in a {cfg.store_sessions}x{cfg.store_turns} store, {label} (p50)",
            f"1-session store {base:.2f} ms",
            f"{v:.2f} ms ({(v / base - 1) * 100:+.1f}%)",
            "<= +10%",
            v <= base * 1.10,
            f"{v - base * 1.10:.2f} ms ({(v / base - 1) * 100 - 10:.1f} points)",
            reference_stats=summary(st["one_session_store"]),
            ours_stats=summary(st[key]),
        )

    # 6. RSS
    fr, orr = pct(cold["floor"]["rss_mib"], 50), pct(cold["ours"]["rss_mib"], 50)
    row(
        "6",
        "idle RSS after initialize (median)",
        f"floor {fr:.1f} MiB",
        f"{orr:.1f} MiB ({orr - fr:+.1f} MiB)",
        "<= floor +10 MiB",
        orr - fr <= 10.0,
        f"{orr - fr - 10.0:.1f} MiB",
    )

    # 7. long answer through a host with a 3 s limit
    la = scen["long_answer"]
    gen, host, dl = la["generation_s"], la["host_timeout_s"], la["answer_deadline_s"]
    for name, tid, label, judged in (
        ("deadline", "7", f"deadline {dl:g} s", True),
        ("baseline_no_deadline", "7b", "deadline 0 (wait for the whole answer)", False),
    ):
        smp = la["samples"][name]
        frac = min(x["delivered_fraction"] for x in smp)
        calls = [x["calls"] for x in smp]
        total = [x["total_s"] for x in smp]
        timeouts = sum(x["timeouts"] for x in smp)
        longest = max(max(x["call_ms"]) for x in smp) / 1e3
        stopped = la["fake_hangups"][name]
        note = f"longest call {longest:.2f} s"
        if not judged:
            note += f"; generations the server stopped: {stopped} of {len(smp)}"
        row(
            tid,
            f"{gen:.0f} s answer, host limit {host:g} s, {label}: "
            f"delivered; calls; total (median of {len(smp)})",
            "-",
            f"{frac * 100:.0f}% (worst run); {pct(calls, 50):.0f} calls; {pct(total, 50):.1f} s; "
            f"{timeouts} host timeouts; {note}",
            "100% delivered" if judged else "",
            (frac == 1.0 and all(x["complete"] for x in smp)) if judged else None,
            f"{(1 - frac) * 100:.0f}% of the answer lost" if judged else "",
            runs=smp,
        )

    # 8. first chat after start, 5 s model load
    ml = scen["model_load"]
    waited, unwaited = ml["samples"]["waited"], ml["samples"]["unwaited"]
    warm = [statistics.median(x["warm_ms"]) for x in waited]
    ratios = [x["first_chat_ms"] / w for x, w in zip(waited, warm, strict=True)]
    first = [x["first_chat_ms"] for x in waited]
    r = pct(ratios, 50)
    row(
        "8",
        f"first chat after the preload ({ml['load_delay_s']:g} s load) / warm chat (median of {len(ratios)})",
        f"warm {pct(warm, 50):.0f} ms",
        f"{pct(first, 50):.0f} ms = {r:.2f}x (worst {max(ratios):.2f}x)",
        "<= 1.2x warm",
        r <= 1.2,
        f"{r - 1.2:.2f}x",
        ratios=ratios,
    )
    uf = [x["first_chat_ms"] for x in unwaited]
    us = [x["first_chat_after_spawn_ms"] for x in unwaited]
    ui = [x["initialize_ms"] for x in unwaited]
    pre = [x["preload_done_after_spawn_ms"] for x in waited]
    row(
        "8b",
        "first chat right after initialize: call time; spawn -> answer (medians)",
        f"initialize {pct(ui, 50):.0f} ms; preload done {pct(pre, 50) / 1e3:.2f} s after spawn",
        f"{pct(uf, 50) / 1e3:.2f} s; {pct(us, 50) / 1e3:.2f} s after spawn",
        "",
        None,
        f"{pct(uf, 50) / pct(warm, 50):.1f}x warm; loads per server: "
        + ",".join(str(x["loads"]) for x in unwaited + waited),
    )
    return rows


def render(rows: list[dict[str, Any]], info: dict[str, Any], elapsed: float, mode: str) -> str:
    head = (
        f"mcp-ollama bench ({mode}) | {info['nproc']} cores, {info['cpu_model']} | "
        f"Python {info['python']} | mcp {info['mcp_sdk']} | load {info['loadavg_at_start'][0]:.2f} | "
        f"{elapsed:.0f} s"
    )
    cols = ("#", "metric", "reference", "ours", "target", "verdict")
    table = [[r["id"], r["metric"], r["reference"], r["ours"], r["target"], r["verdict"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *table, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = [head, line, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    out.append(line)
    return "\n".join(out)


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~90 s)")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON file (default bench/results/latest.json, committed; "
        "--quick: bench/results/quick.json, git-ignored)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    parser.add_argument(
        "--at", metavar="REV", help="measure this commit's src/ and tests/ (a git archive), not the work tree"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip npm ollama-mcp (row 2d)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--http-only",
        action="store_true",
        help="only the HTTP scenarios (rows 9, 9b, 10; bench/http_scenarios.py)",
    )
    which.add_argument("--no-http", action="store_true", help="skip the HTTP scenarios (rows 9, 9b, 10)")
    parser.add_argument(
        "--no-peer-install",
        action="store_true",
        help="do not npm install ollama-mcp into bench/.node if missing",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    mode = "quick" if args.quick else "default"
    if args.out is None:
        name = "quick.json" if args.quick else "latest.json"
        if args.http_only:
            name = "http-quick.json" if args.quick else "http.json"
        args.out = str(REPO / "bench" / "results" / name)
    if args.http_only:
        mode += ", http only"
        args.no_peer = True
    peer = "skipped (--no-peer)" if args.no_peer else scenarios.find_peer(install=not args.no_peer_install)
    if isinstance(peer, str):
        say(f"peer not run: {peer}")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    info = machine()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mcp-ollama-bench-"))
    (tmp / "logs").mkdir()
    (tmp / "home").mkdir()
    failed = True
    try:
        with TimedFake() as fake:
            bench = Bench(cfg, tmp, fake)
            cold: dict[str, Any] = {}
            res: dict[str, Any] = {}
            scen: dict[str, Any] = {}
            http: dict[str, Any] = {}
            try:
                if not args.http_only:
                    say("cold start and idle RSS")
                    cold = bench_cold_start(bench)
                    res = anyio.run(bench_async, bench, peer if isinstance(peer, scenarios.Peer) else None)
                    scen = anyio.run(scenarios.run_scenarios, bench)
                if not args.no_http:
                    http = anyio.run(http_scenarios.run_http, bench)
            finally:
                for proc in list(bench.procs):
                    _reap(proc)
        elapsed = time.perf_counter() - started
        rows = [] if args.http_only else evaluate(cold, res, cfg, scen, peer)
        if http:
            rows += http_scenarios.evaluate(http, pct, summary)
        print(render(rows, info, elapsed, mode), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "mode": mode,
            "machine": info,
            "config": dataclasses.asdict(cfg),
            "elapsed_s": elapsed,
            "loadavg_at_end": list(os.getloadavg()),
            "results": rows,
            "peer": {
                "package": f"{scenarios.PEER_PACKAGE}@{peer.version}",
                "command": ["node", *(str(Path(a).relative_to(REPO)) for a in peer.args)],
            }
            if isinstance(peer, scenarios.Peer)
            else {"not_run": peer},
            "samples": {**({"cold_start": cold} if cold else {}), **res, **scen, **http},
        }
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {out}")
        failed = False
        return 0 if all(r["pass"] is not False for r in rows) else 1
    finally:
        if failed:
            for log in sorted((tmp / "logs").glob("*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
