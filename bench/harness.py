"""What every part of the bench shares: the settings, the statistics, the fake, ``Bench``.

``Bench`` is one run: its settings (``Config``: ``DEFAULT``, or ``QUICK`` for ``--quick``), its
temporary directory, the ``TimedFake`` that every stdio server talks to, and the server
processes it started; it gives every server process the same environment (ours, the floor and
the peer alike) and opens SDK clients over stdio. The scenario modules, the report and
``run.py`` import this module; it imports no other bench module. Like them, it is imported
only once ``run.py`` has put the code under test (``snapshot.CODE``) on ``sys.path``:
``tests.fake_ollama`` comes from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from tests.fake_ollama import FakeOllama

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FLOOR_SCRIPT = REPO / "bench" / "floor_server.py"
OURS_ARGS = ["-m", "mcp_ollama"]
FLOOR_ARGS = [str(FLOOR_SCRIPT)]


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
    http_rounds: int = 6  # rows 9/9b's ratios moved 0.9-1.5x between runs with 2: see their intervals
    hosts_clients: int = 8
    hosts_calls: int = 4
    hosts_latency_s: float = 0.2
    hosts_rounds: int = 2
    models_chats: int = 16
    models_latency_s: float = 0.2
    models_tokens: int = 5
    models_token_delay: float = 0.01
    models_rounds: int = 10
    models_parallel_rounds: int = 16
    replicas_clients: int = 16
    replicas_calls: int = 8
    replicas_warmup_calls: int = 2
    replicas_latency_s: float = 0.05
    replicas_rounds: int = 3


DEFAULT = Config(
    cold_pairs=30,
    cold_settle_s=0.3,
    calls=1000,  # p99 of 1000 calls is the 10th slowest: one hiccup of the machine does not set it
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
    models_rounds=2,
    models_parallel_rounds=4,
    replicas_calls=3,
    replicas_warmup_calls=1,
    replicas_rounds=1,
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


def ratio_interval(
    a: Sequence[float], b: Sequence[float], q: float, reps: int = 1000, seed: int = 21
) -> tuple[float, float]:
    """The 90 % bootstrap interval of ``pct(a, q) / pct(b, q)``: how far a run's p99 ratio could
    have landed by the luck of which calls hit a hiccup of the machine. Rounds are resampled
    whole (``a[i]`` and ``b[i]`` were taken in the same interleaved round), so drift stays paired:
    ``rounds_interval`` with one call a round."""

    def pct_of(picked: list[Sequence[float]]) -> float:
        return pct([r[0] for r in picked], q)

    return rounds_interval([[x] for x in a], [[x] for x in b], pct_of, reps, seed)


def rounds_interval(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    stat: Callable[[list[Sequence[float]]], float],
    reps: int = 1000,
    seed: int = 21,
) -> tuple[float, float]:
    """The 90 % bootstrap interval of ``stat(a's rounds) / stat(b's rounds)``, resampling whole
    rounds: ``a[i]`` and ``b[i]`` were measured in the same rotation, so drift stays paired. With
    one round there is nothing to resample: the interval is the point."""
    rng = random.Random(seed)
    n = len(a)
    ratios = []
    for _ in range(reps if n > 1 else 1):
        picks = [rng.randrange(n) for _ in range(n)] if n > 1 else [0]
        ratios.append(stat([a[i] for i in picks]) / stat([b[i] for i in picks]))
    return pct(ratios, 5), pct(ratios, 95)


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


def reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None and not stream.closed:
            with contextlib.suppress(OSError):
                stream.close()


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)
