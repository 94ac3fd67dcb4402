"""Rows 11 and 11b of ``bench/run.py``, over stdio: 16 chats over two models, ours against the floor.

The fake Ollama serves two models, llama3:8b and llama3.1:8b; every chat takes ``models_latency_s``
to its first token, then ``models_tokens - 1`` more tokens ``models_token_delay`` apart. A round:
one SDK client (one stdio connection, handshake era) makes ``models_chats`` ``chat`` calls at once,
alternating the two models (half each), a new chat session each; measured: the round's wall time
and each call's latency. Judged: ours' median wall time over the floor's, at most 1.10x.

11.  The fake generates one chat per model at a time (``FakeOllama(num_parallel=1)``, as Ollama
     with its default ``OLLAMA_NUM_PARALLEL=1``) and keeps the rest waiting, unanswered. Ours runs
     with its defaults (``MCP_OLLAMA_MAX_PARALLEL`` unset: ``--max-parallel`` 1 per server and
     model), so it holds in its own slots what Ollama would hold in its queue; the floor sends all
     16 at once and the fake queues them.
11b. The fake generates 16 chats per model at once; ours with ``--max-parallel 16`` (passed as
     ``MCP_OLLAMA_MAX_PARALLEL=16``, as ``http_servers.py`` passes it).

The floor is ``bench/floor_server.py``, the model named per call. Each variant has its own server
process and its own fake (the same settings), so each fake's peaks are its variant's own: the most
chats generating with one model at once (``peak_generating``), the most models generating at once
(``peak_models``), and the most chat requests open at the fake, those waiting for a slot included
(``CountingFake.peak_open``: ours keeps waiting chats to itself, the floor hands them to Ollama).
Rounds alternate who goes first, after one unmeasured round each with an instant answer (HTTP
pools open, models known and loaded, code paths hot).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from tests.fake_ollama import LLAMA3, LLAMA31, Behavior, FakeOllama

from harness import FLOOR_ARGS, Bench, say

MODELS = (LLAMA3, LLAMA31)
PARTS: dict[str, tuple[int, int | None]] = {"serial": (1, None), "parallel": (16, 16)}
"""Part: (the fake's chats per model at once, ours' ``MCP_OLLAMA_MAX_PARALLEL``; None: unset)."""
VARIANTS = ("floor", "ours")


class CountingFake(FakeOllama):
    """A ``FakeOllama`` that also counts chat requests open at once, waiting ones included."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.open_chats = 0
        self.peak_open = 0

    async def _chat(self, conn: Any, request: Any) -> bool:
        self.open_chats += 1  # only ever touched on the fake's own event loop
        self.peak_open = max(self.peak_open, self.open_chats)
        try:
            return await super()._chat(conn, request)
        finally:
            self.open_chats -= 1


def ours_default_max_parallel() -> int | str:
    """What ``--max-parallel`` is when nothing sets it, in the code under test."""
    try:
        from mcp_ollama.config.settings import Settings
    except ImportError:
        return "?"
    value = getattr(Settings, "max_parallel", "?")
    return value if isinstance(value, int) else "?"


@asynccontextmanager
async def _stdio(
    bench: Bench, name: str, args: list[str], url: str, max_parallel: int | None
) -> AsyncIterator[Client]:
    """``Bench.client``, but with ``MCP_OLLAMA_MAX_PARALLEL`` as the part wants it: the harness
    sets 64 for every server, and here the setting (or its absence) is what is measured."""
    env = bench.env(bench.tmp / f"{name}.sqlite3", url)
    env.pop("MCP_OLLAMA_MAX_PARALLEL", None)
    if max_parallel is not None:
        env["MCP_OLLAMA_MAX_PARALLEL"] = str(max_parallel)
    params = StdioServerParameters(command=sys.executable, args=args, env=env)
    with bench.log(name).open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            yield client


async def chat_round(client: Client, n: int, tag: str) -> dict[str, Any]:
    """``n`` chats at once on one connection, the models alternating; wall time, each call's time."""
    chat_ms: list[float] = []

    async def one(k: int) -> None:
        started = time.perf_counter()
        result = await client.call_tool("chat", {"message": f"{tag} {k}", "model": MODELS[k % 2].name})
        chat_ms.append((time.perf_counter() - started) * 1e3)
        if result.is_error:
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            raise RuntimeError(f"models {tag}: isError result: {text[:300]}")
        status = (result.structured_content or {}).get("status", "complete")  # the floor has none
        if status != "complete":
            raise RuntimeError(f"models {tag}: chat came back {status!r}, not complete")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for k in range(n):
            tg.start_soon(one, k)
    return {"wall_ms": (time.perf_counter() - started) * 1e3, "chat_ms": chat_ms}


def _fake_stats(fake: CountingFake) -> dict[str, Any]:
    return {
        "peak_generating": fake.peak_generating,
        "peak_models": fake.peak_models,
        "peak_open": fake.peak_open,
        "chat_requests": len(fake.chat_requests),
    }


async def bench_models(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    n = cfg.models_chats
    chat = Behavior(
        token_count=cfg.models_tokens,
        first_token_delay=cfg.models_latency_s,
        token_delay=cfg.models_token_delay,
    )
    started = time.perf_counter()
    out: dict[str, Any] = {
        "chats": n,
        "models": [m.name for m in MODELS],
        "latency_s": cfg.models_latency_s,
        "tokens": cfg.models_tokens,
        "token_delay_s": cfg.models_token_delay,
        "ours_default_max_parallel": ours_default_max_parallel(),
    }
    with contextlib.ExitStack() as fakes:
        fake_of: dict[tuple[str, str], CountingFake] = {}
        for part, (limit, _) in PARTS.items():
            for variant in VARIANTS:
                fake_of[part, variant] = CountingFake(models=list(MODELS), num_parallel=limit)
                fakes.enter_context(fake_of[part, variant])
        clients: dict[tuple[str, str], Client] = {}
        async with AsyncExitStack() as stack:
            # Start every server at once (start-up is not measured), each client in its own task
            # as anyio's scopes require; they close together at the end.
            ready = {key: anyio.Event() for key in fake_of}
            stop = anyio.Event()
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(stop.set)

            async def hold(part: str, variant: str) -> None:
                args = FLOOR_ARGS if variant == "floor" else bench.ours_args
                ours_limit = PARTS[part][1] if variant == "ours" else None
                url = fake_of[part, variant].url
                async with _stdio(bench, f"models-{part}-{variant}", args, url, ours_limit) as client:
                    clients[part, variant] = client
                    ready[part, variant].set()
                    await stop.wait()

            for part, variant in fake_of:
                tg.start_soon(hold, part, variant)
            with anyio.fail_after(90):
                for event in ready.values():
                    await event.wait()
            for part, (limit, ours_limit) in PARTS.items():
                rounds = cfg.models_rounds if part == "serial" else cfg.models_parallel_rounds
                samples: dict[str, dict[str, list[float]]] = {
                    v: {"wall_ms": [], "chat_ms": []} for v in VARIANTS
                }
                for variant in VARIANTS:  # warm-up: an instant answer, every chat at once
                    fake_of[part, variant].default = Behavior(reply="ok")
                    await chat_round(clients[part, variant], n, f"warm-{part}-{variant}")
                    fake_of[part, variant].default = chat
                for r in range(rounds):
                    say(f"two models, {part}: {n} chats, fake {limit} per model ({r + 1}/{rounds})")
                    for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                        got = await chat_round(clients[part, variant], n, f"{part}-{variant}-{r}")
                        samples[variant]["wall_ms"].append(got["wall_ms"])
                        samples[variant]["chat_ms"] += got["chat_ms"]
                out[part] = {
                    "fake_num_parallel": limit,
                    "ours_max_parallel": ours_limit if ours_limit is not None else "default",
                    **{v: {**samples[v], "fake": _fake_stats(fake_of[part, v])} for v in VARIANTS},
                }
            say("closing servers")
    out["elapsed_s"] = time.perf_counter() - started
    say(f"two models: {out['elapsed_s']:.1f} s")
    return out
