"""Rows 7 and 8 of ``bench/run.py``, over stdio: a long answer, and the first chat after a model load.

A. Long answer through an impatient host. A 12 s generation (``long_tokens`` tokens,
   ``long_token_delay`` apart) through an SDK client whose per-request timeout is
   ``host_timeout_s`` (``Client(..., read_timeout_seconds=3)``: a hard limit, not reset by
   progress, like Claude Desktop's). Our server runs with ``MCP_OLLAMA_ANSWER_DEADLINE`` below
   the host's limit; the client calls ``chat``, then ``chat_result`` until ``status ==
   "complete"``. Baseline: the same with ``MCP_OLLAMA_ANSWER_DEADLINE=0`` (wait for the whole
   answer, the behaviour before answer deadlines): the host times out and gets nothing.
   Each variant has its own server process and its own fake Ollama, and they alternate.

B. First chat after start, with a model that takes ``load_delay_s`` to load (the fake's
   ``load_delay``). A fresh server (preload on), the model not loaded; the first chat is made
   (a) right after ``initialize``, or (b) once the preload has finished (the fake has recorded
   the load); then warm chats on the (b) server. The chat itself is a short, realistic
   generation (``load_chat``: 100 ms to the first token, 20 tokens 10 ms apart), so "warm" is
   what a user waits for a loaded model, and the ratio (b) / warm says what the first call
   still pays once the load is out of the way.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anyio
from mcp import Client, MCPError
from tests.fake_ollama import Behavior, FakeOllama

from harness import Bench, say

LOAD_CHAT = Behavior(token_count=20, first_token_delay=0.1, token_delay=0.01)
"""The chat of scenario B: ~0.3 s, what a loaded 8B model takes for a short answer."""


# --------------------------------------------------------------------------- A: long answer


def expected_answer(tokens: int) -> str:
    return "".join(f"tok{i} " for i in range(tokens))


def delivered_tokens(answer: str, tokens: int) -> int:
    """How many of the expected tokens ``answer`` holds, in order from the start."""
    got = answer.split()
    n = 0
    for i, word in enumerate(got[:tokens]):
        if word != f"tok{i}":
            break
        n += 1
    return n


async def long_answer_once(client: Client, tokens: int, label: str, max_calls: int = 40) -> dict[str, Any]:
    """``chat``, then ``chat_result`` until complete; what the host got, and how."""
    calls, timeouts, statuses, call_ms = 0, 0, [], []
    answer, sid, error = "", None, None
    started = time.perf_counter()
    while calls < max_calls:
        calls += 1
        t0 = time.perf_counter()
        try:
            if sid is None:
                result = await client.call_tool("chat", {"message": f"write a long answer ({label})"})
            else:
                result = await client.call_tool("chat_result", {"session_id": sid})
        except MCPError as exc:  # the host's timeout (or the connection went away)
            call_ms.append((time.perf_counter() - t0) * 1e3)
            timeouts += 1
            error = f"{type(exc).__name__}: {exc}"
            statuses.append("timeout")
            if sid is None:
                break  # no session id: nothing to ask chat_result about
            continue
        call_ms.append((time.perf_counter() - t0) * 1e3)
        if result.is_error:
            error = result.content[0].text if result.content else "isError"
            statuses.append("error")
            break
        sc = result.structured_content or {}
        sid = sc.get("session_id", sid)
        status = sc.get("status", "?")
        statuses.append(status)
        answer = sc.get("answer", "")
        if status != "generating":
            break
    total_s = time.perf_counter() - started
    got = delivered_tokens(answer, tokens) if statuses and statuses[-1] == "complete" else 0
    return {
        "delivered_fraction": got / tokens,
        "delivered_tokens": got,
        "complete": bool(statuses) and statuses[-1] == "complete" and answer == expected_answer(tokens),
        "calls": calls,
        "timeouts": timeouts,
        "total_s": total_s,
        "statuses": statuses,
        "call_ms": call_ms,
        "error": error,
    }


async def bench_long_answer(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    behavior = Behavior(token_count=cfg.long_tokens, token_delay=cfg.long_token_delay)
    variants = {
        "deadline": str(cfg.answer_deadline_s),
        "baseline_no_deadline": "0",
    }
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    hangups: dict[str, int] = {}
    with contextlib.ExitStack() as fakes:
        fake_of = {name: fakes.enter_context(FakeOllama()) for name in variants}
        for fake in fake_of.values():
            fake.default = behavior
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, Client] = {}
            for name, deadline in variants.items():
                clients[name] = await stack.enter_async_context(
                    bench.client(
                        f"long-{name}",
                        bench.ours_args,
                        bench.tmp / f"long-{name}.sqlite3",
                        url=fake_of[name].url,
                        extra_env={"MCP_OLLAMA_ANSWER_DEADLINE": deadline},
                        read_timeout=cfg.host_timeout_s,
                    )
                )
            for fake in fake_of.values():  # the preloads are done before anything is timed
                await anyio.to_thread.run_sync(fake.wait_for_loads, 1, 10.0)
            names = list(variants)
            for rep in range(cfg.long_reps):
                for name in names if rep % 2 == 0 else names[::-1]:
                    say(f"long answer: {name} ({rep + 1}/{cfg.long_reps})")
                    sample = await long_answer_once(clients[name], cfg.long_tokens, f"{name} {rep}")
                    # Whatever the server left running (the baseline's cancelled job) ends before
                    # the next variant is timed.
                    sample["fake_idle"] = await anyio.to_thread.run_sync(fake_of[name].wait_for_idle, 20.0)
                    samples[name].append(sample)
        for name, fake in fake_of.items():
            hangups[name] = fake.hangups
    return {
        "samples": samples,
        "fake_hangups": hangups,
        "generation_s": cfg.long_tokens * cfg.long_token_delay,
        "host_timeout_s": cfg.host_timeout_s,
        "answer_deadline_s": cfg.answer_deadline_s,
    }


# --------------------------------------------------------------------------- B: model load


async def _wait_loaded(fake: FakeOllama, limit: float) -> float | None:
    """Poll the fake until it has recorded a load; seconds waited, or None."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if fake.loads:
            return time.perf_counter() - started
        await anyio.sleep(0.01)
    return None


async def _timed_chat(client: Client, message: str) -> float:
    t0 = time.perf_counter()
    result = await client.call_tool("chat", {"message": message})
    ms = (time.perf_counter() - t0) * 1e3
    if result.is_error:
        raise RuntimeError(f"load: isError result: {result.content[0].text if result.content else ''}")
    sc = result.structured_content or {}
    if sc.get("status") != "complete":
        raise RuntimeError(f"load: chat came back {sc.get('status')!r}, not complete")
    return ms


async def load_once(bench: Bench, fake: FakeOllama, variant: str, rep: int) -> dict[str, Any]:
    """One fresh server against an unloaded model: (a) ``unwaited`` chats at once, (b)
    ``waited`` chats once the preload is done, then ``warm_calls`` warm chats."""
    cfg = bench.cfg
    fake.reset()  # unloads the model, forgets earlier loads; load_delay back to the constructor's
    fake.default = LOAD_CHAT
    spawned = time.perf_counter()
    out: dict[str, Any] = {}
    async with bench.client(
        f"load-{variant}",
        bench.ours_args,
        bench.tmp / f"load-{variant}-{rep}.sqlite3",
        url=fake.url,
        extra_env={"MCP_OLLAMA_PRELOAD": "on"},
    ) as client:
        out["initialize_ms"] = (time.perf_counter() - spawned) * 1e3
        if variant == "waited":
            waited = await _wait_loaded(fake, cfg.load_delay_s + 30)
            if waited is None:
                raise RuntimeError("load: the server did not preload the model")
            out["waited_after_initialize_ms"] = waited * 1e3
            out["preload_done_after_spawn_ms"] = (time.perf_counter() - spawned) * 1e3
        out["first_chat_ms"] = await _timed_chat(client, f"first {variant} {rep}")
        out["first_chat_after_spawn_ms"] = (time.perf_counter() - spawned) * 1e3
        if variant == "waited":
            out["warm_ms"] = [
                await _timed_chat(client, f"warm {rep} {k}") for k in range(cfg.load_warm_calls)
            ]
    out["loads"] = len(fake.loads)
    return out


async def bench_model_load(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    samples: dict[str, list[dict[str, Any]]] = {"unwaited": [], "waited": []}
    with FakeOllama(load_delay=cfg.load_delay_s) as fake:
        order = list(samples)
        for rep in range(cfg.load_reps):
            for variant in order if rep % 2 == 0 else order[::-1]:
                say(f"model load: {variant} ({rep + 1}/{cfg.load_reps})")
                samples[variant].append(await load_once(bench, fake, variant, rep))
    return {
        "samples": samples,
        "load_delay_s": cfg.load_delay_s,
        "chat": "20 tokens: 100 ms to the first, then 10 ms apart (~0.3 s)",
    }


async def run_scenarios(bench: Bench) -> dict[str, Any]:
    return {"long_answer": await bench_long_answer(bench), "model_load": await bench_model_load(bench)}
